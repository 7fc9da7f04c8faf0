//! How big one connection's read buffer is: small while the connection is quiet, doubled while
//! its reads come back full (pipelining), and, for a frame still arriving, grown only as fast
//! as the frame's bytes arrive, never to the size its length word announces.
//! Pure (no socket, no clock): the read loop hands the buffer over between reads.
//! Must never reserve a frame's announced size up front, nor give a read more room than
//! [`READ_BUFFER_SIZE_MAX`] unless a partial frame already holds about as many bytes.

use bytes::BytesMut;

use crate::codec::frame::{FRAME_SIZE_MIN, LENGTH_FIELD_SIZE};
use crate::codec::limits::FrameLimits;

use super::config::{READ_BUFFER_SIZE_MAX, READ_BUFFER_SIZE_MIN};

/// The announced size (length word included) of the frame at the front of `buf`, once both
/// leading words are buffered. Only call it on a buffer `frame::check` accepted: the length
/// word is then within `limits`.
///
/// # Panics
/// If the length word is outside `limits` (it was not checked: a caller bug).
pub(crate) fn announced_frame_size(buf: &[u8], limits: &FrameLimits) -> Option<usize> {
    let words = buf.get(..FRAME_SIZE_MIN)?;
    let total = u32::from_be_bytes([words[0], words[1], words[2], words[3]]) as usize;
    let frame_size = total + LENGTH_FIELD_SIZE;
    assert!(frame_size >= FRAME_SIZE_MIN, "length word not checked");
    assert!(
        frame_size <= limits.frame_size_max,
        "length word not checked"
    );
    Some(frame_size)
}

/// Room offered to each read, adapted to what reads bring back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadSizer {
    read_size: usize,
}

impl Default for ReadSizer {
    fn default() -> Self {
        Self {
            read_size: READ_BUFFER_SIZE_MIN,
        }
    }
}

impl ReadSizer {
    /// Room the next read gets at least.
    #[cfg(test)]
    pub(crate) fn read_size(&self) -> usize {
        self.read_size
    }

    /// Adapts to a read that brought `received` bytes: a read that filled the room means more
    /// is waiting (double, up to [`READ_BUFFER_SIZE_MAX`]); one that brought less than half
    /// means the peer went quiet (shrink at once to what it sent, down to
    /// [`READ_BUFFER_SIZE_MIN`]).
    pub(crate) fn record_read(&mut self, received: usize) {
        if received >= self.read_size {
            self.read_size = (self.read_size * 2).min(READ_BUFFER_SIZE_MAX);
        } else if received < self.read_size / 2 {
            self.read_size = received.next_power_of_two().max(READ_BUFFER_SIZE_MIN);
        }
        assert!(self.read_size >= READ_BUFFER_SIZE_MIN);
        assert!(self.read_size <= READ_BUFFER_SIZE_MAX);
    }

    /// Room to give the next read of `buf`: the read size, or for a partial frame of known
    /// size the rest of the frame but at most as many bytes as it holds already (at least
    /// [`READ_BUFFER_SIZE_MAX`]), so the buffer at most doubles per step while the frame
    /// arrives.
    pub(crate) fn room_wanted(&self, buf: &[u8], limits: &FrameLimits) -> usize {
        let Some(frame_size) = announced_frame_size(buf, limits) else {
            return self.read_size;
        };
        let rest = frame_size.saturating_sub(buf.len());
        let step = rest.min(buf.len().max(READ_BUFFER_SIZE_MAX));
        self.read_size.max(step)
    }

    /// Returns `buf` with room for the next read (see [`Self::room_wanted`]). An empty buffer
    /// whose room is far from the read size is replaced by a fresh one, which gives back the
    /// large buffer of a connection that went quiet; a buffer holding a partial frame is
    /// copied into an exactly sized one when it lacks room.
    pub(crate) fn prepare(&self, buf: BytesMut, limits: &FrameLimits) -> BytesMut {
        let want = self.room_wanted(&buf, limits);
        if buf.is_empty() {
            if (want..=2 * want).contains(&buf.capacity()) {
                return buf;
            }
            return BytesMut::with_capacity(want);
        }
        if buf.capacity() - buf.len() >= want {
            return buf;
        }
        // Not `reserve`: it may double an allocation past what the frame will need.
        let mut grown = BytesMut::with_capacity(buf.len() + want);
        grown.extend_from_slice(&buf);
        assert_eq!(grown.len(), buf.len());
        grown
    }
}

#[cfg(test)]
mod tests {
    use bytes::BufMut;

    use super::*;

    fn partial_frame(frame_size: usize, buffered: usize) -> BytesMut {
        assert!(buffered >= FRAME_SIZE_MIN);
        let mut buf = BytesMut::with_capacity(buffered);
        buf.put_u32(u32::try_from(frame_size - LENGTH_FIELD_SIZE).expect("fits"));
        buf.put_u32(0); // JSON, empty header
        buf.resize(buffered, 0);
        buf
    }

    #[test]
    fn grows_while_reads_fill_and_shrinks_when_quiet() {
        let mut sizer = ReadSizer::default();
        assert_eq!(sizer.read_size(), READ_BUFFER_SIZE_MIN);
        let mut sizes = Vec::new();
        for _ in 0..6 {
            sizer.record_read(sizer.read_size());
            sizes.push(sizer.read_size() / 1024);
        }
        assert_eq!(sizes, [8, 16, 32, 64, 64, 64]);
        // A read between half and all of the room keeps it.
        sizer.record_read(READ_BUFFER_SIZE_MAX / 2 + 1);
        assert_eq!(sizer.read_size(), READ_BUFFER_SIZE_MAX);
        // A heartbeat after the burst: back to the minimum at once.
        sizer.record_read(300);
        assert_eq!(sizer.read_size(), READ_BUFFER_SIZE_MIN);
        // Growing again after a quiet spell, then a 5 KiB read: 8 KiB, the power of two above.
        sizer.record_read(READ_BUFFER_SIZE_MIN);
        sizer.record_read(READ_BUFFER_SIZE_MIN * 2);
        assert_eq!(sizer.read_size(), 4 * READ_BUFFER_SIZE_MIN);
        sizer.record_read(5 * 1024);
        assert_eq!(sizer.read_size(), 8 * 1024);
    }

    #[test]
    fn a_quiet_connection_gives_back_its_large_buffer() {
        let limits = FrameLimits::default();
        let sizer = ReadSizer::default();
        let big = BytesMut::with_capacity(READ_BUFFER_SIZE_MAX);
        let prepared = sizer.prepare(big, &limits);
        assert_eq!(prepared.capacity(), READ_BUFFER_SIZE_MIN);
        // A buffer of about the right size is kept, not reallocated.
        let fitting = BytesMut::with_capacity(READ_BUFFER_SIZE_MIN + 100);
        let pointer = fitting.as_ptr();
        let prepared = sizer.prepare(fitting, &limits);
        assert_eq!(prepared.as_ptr(), pointer);
        // A fresh (unallocated) buffer gets the read size.
        assert_eq!(
            sizer.prepare(BytesMut::new(), &limits).capacity(),
            READ_BUFFER_SIZE_MIN
        );
    }

    /// Defect 5 of issue 11: a frame announcing 15 MiB used to reserve 15 MiB at its length
    /// word. The buffer now follows what arrived: at most about twice the bytes received.
    #[test]
    fn a_large_frame_grows_the_buffer_only_as_its_bytes_arrive() {
        let limits = FrameLimits::default();
        let sizer = ReadSizer::default();
        let announced = 15 * 1024 * 1024;
        let prepared = sizer.prepare(partial_frame(announced, 4096), &limits);
        assert_eq!(prepared.len(), 4096);
        assert_eq!(prepared.capacity(), 4096 + READ_BUFFER_SIZE_MAX);
        // Receiving the frame step by step: each step at most doubles the buffer.
        let mut buf = prepared;
        let mut steps = 0;
        while buf.len() < announced {
            let received = buf.capacity() - buf.len();
            buf.resize(buf.len() + received, 0);
            if buf.len() == announced {
                break;
            }
            let before = buf.len();
            buf = sizer.prepare(buf, &limits);
            assert!(
                buf.capacity() <= 2 * before.max(READ_BUFFER_SIZE_MAX),
                "{} for {before}",
                buf.capacity()
            );
            assert!(buf.capacity() <= announced);
            steps += 1;
        }
        assert_eq!(buf.len(), announced);
        assert!(steps < 16, "{steps} growth steps");
    }

    #[test]
    fn a_small_partial_frame_gets_the_read_size() {
        let limits = FrameLimits::default();
        let sizer = ReadSizer::default();
        let mut buf = partial_frame(1000, 300);
        buf.reserve(READ_BUFFER_SIZE_MIN);
        let pointer = buf.as_ptr();
        let prepared = sizer.prepare(buf, &limits);
        assert_eq!(prepared.as_ptr(), pointer, "room enough, kept");
        // Without room: copied into a buffer with the read size free (the frame's 700 more
        // bytes fit in it).
        let tight = partial_frame(1000, 300);
        let prepared = sizer.prepare(tight, &limits);
        assert_eq!(prepared.len(), 300);
        assert_eq!(prepared.capacity(), 300 + READ_BUFFER_SIZE_MIN);
        // Before the length word is complete the size is unknown: the read size.
        let mut head = BytesMut::new();
        head.put_u16(0);
        assert_eq!(sizer.room_wanted(&head, &limits), READ_BUFFER_SIZE_MIN);
    }

    #[test]
    #[should_panic(expected = "length word not checked")]
    fn an_unchecked_length_word_is_a_bug() {
        let limits = FrameLimits::default();
        let _ = announced_frame_size(&partial_frame(limits.frame_size_max + 1, 8), &limits);
    }
}
