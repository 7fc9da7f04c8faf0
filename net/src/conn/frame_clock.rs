//! The clock of the frame at the front of a connection's read buffer, for the frame
//! completion timeout: it starts with a frame's first bytes, restarts when a read completes
//! that frame and brings the next, stops between frames and while the in-flight cap (not the
//! peer) holds reading. Pure: the read loop passes the time in.
//! Must never blame the peer for a wait this side caused, nor restart for more bytes of the
//! same frame (a trickle must not reset it).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::error::ConnError;

/// The frame at the front of the read buffer while it arrives, for the frame completion
/// timeout.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameProgress {
    /// When its first bytes were seen; `None` between frames and while the in-flight cap
    /// holds reading.
    pub(crate) since: Option<Instant>,
    /// Bytes of it buffered at the last read.
    buffered: usize,
    /// Its announced size, once the length word arrived.
    frame_size: Option<usize>,
}

impl FrameProgress {
    /// Notes the buffer as a read is about to be issued: `buffered` bytes of a frame (of
    /// `frame_size`, if known), after `decoded` says whether frames were taken off the front
    /// since the last read. A frame that began since then starts its clock `now`.
    pub(crate) fn before_read(
        &mut self,
        buffered: usize,
        frame_size: Option<usize>,
        decoded: bool,
        now: Instant,
    ) {
        self.buffered = buffered;
        self.frame_size = frame_size;
        if buffered == 0 {
            self.since = None;
        } else if decoded || self.since.is_none() {
            self.since = Some(now);
        }
    }

    /// Reading stops (in-flight cap): the peer cannot be blamed for the wait.
    pub(crate) fn pause(&mut self) {
        self.since = None;
    }

    /// The error to close with if the frame is still incomplete `timeout` after it started.
    pub(crate) fn overdue(
        &self,
        peer: SocketAddr,
        timeout: Duration,
        now: Instant,
    ) -> Option<ConnError> {
        let since = self.since?;
        (now >= since + timeout).then_some(ConnError::FrameTimeout {
            peer,
            timeout,
            buffered: self.buffered,
            frame_size: self.frame_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: ([u8; 4], u16) = ([127, 0, 0, 1], 9);

    #[test]
    fn the_frame_clock_starts_with_a_frame_and_runs_until_it_completes() {
        let timeout = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut progress = FrameProgress::default();
        // Between frames: no clock.
        progress.before_read(0, None, false, t0);
        assert_eq!(progress.since, None);
        assert!(progress
            .overdue(PEER.into(), timeout, t0 + timeout)
            .is_none());
        // First bytes of a frame: the clock starts.
        progress.before_read(3, None, false, t0);
        assert_eq!(progress.since, Some(t0));
        // More bytes of the same frame (a trickle) do not restart it.
        let t1 = t0 + Duration::from_secs(30);
        progress.before_read(9, Some(1000), false, t1);
        assert_eq!(progress.since, Some(t0));
        assert!(progress.overdue(PEER.into(), timeout, t1).is_none());
        let late = t0 + timeout;
        match progress.overdue(PEER.into(), timeout, late) {
            Some(ConnError::FrameTimeout {
                buffered,
                frame_size,
                ..
            }) => {
                assert_eq!(buffered, 9);
                assert_eq!(frame_size, Some(1000));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_completed_frame_restarts_the_clock_for_the_next() {
        let timeout = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut progress = FrameProgress::default();
        progress.before_read(100, Some(500), false, t0);
        // A read completed that frame and brought the start of the next one.
        let t1 = t0 + Duration::from_secs(50);
        progress.before_read(20, Some(800), true, t1);
        assert_eq!(progress.since, Some(t1));
        assert!(progress
            .overdue(PEER.into(), timeout, t0 + timeout)
            .is_none());
        assert!(progress
            .overdue(PEER.into(), timeout, t1 + timeout)
            .is_some());
        // The buffer emptied: nothing to wait for.
        progress.before_read(0, None, true, t1);
        assert!(progress
            .overdue(PEER.into(), timeout, t1 + timeout)
            .is_none());
    }

    #[test]
    fn a_pause_by_the_inflight_cap_is_not_the_peers_delay() {
        let timeout = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut progress = FrameProgress::default();
        progress.before_read(100, Some(500), false, t0);
        progress.pause();
        assert!(progress
            .overdue(PEER.into(), timeout, t0 + timeout)
            .is_none());
        // Reading resumes much later: the clock restarts then.
        let t1 = t0 + 2 * timeout;
        progress.before_read(100, Some(500), false, t1);
        assert_eq!(progress.since, Some(t1));
        assert!(progress.overdue(PEER.into(), timeout, t1).is_none());
    }
}
