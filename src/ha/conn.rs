//! Framed reads and writes of HA frames on a `compio` TCP stream (shared by both sides).
//!
//! Owns the per-connection read buffer: it grows to the frame the buffered header announces
//! (at most `HA_FRAME_SIZE_MAX`), never more. Must never: hand out a frame from the wrong side
//! of the connection or for another shard, or write a frame the codec did not check.

use bytes::{Bytes, BytesMut};
use compio::buf::BufResult;
use compio::io::{AsyncReadExt, AsyncWriteExt};
use compio::net::TcpStream;
use rmq_net::ha::{self, Frame, Sender};

use super::HaError;
use crate::limits::HA_READ_SIZE_MIN;

/// Reads the frames one peer sends on one shard's connection.
#[derive(Debug)]
pub(crate) struct FrameReader {
    buf: BytesMut,
    shard_id: u16,
    from: Sender,
}

impl FrameReader {
    /// A reader of the frames `from` sends for `shard_id`.
    pub(crate) fn new(shard_id: u16, from: Sender) -> Self {
        Self {
            buf: BytesMut::new(),
            shard_id,
            from,
        }
    }

    /// A reader that starts with `buffered`: the bytes another reader of the same connection
    /// read past its last frame ([`FrameReader::into_buffered`]), when a connection moves to
    /// the shard its Hello names.
    pub(crate) fn with_buffered(shard_id: u16, from: Sender, buffered: BytesMut) -> Self {
        Self {
            buf: buffered,
            shard_id,
            from,
        }
    }

    /// The bytes read past the last frame returned.
    pub(crate) fn into_buffered(self) -> BytesMut {
        self.buf
    }

    /// The next frame. [`HaError::Closed`] on an end of stream (clean or inside a frame).
    ///
    /// Not cancel-safe: bytes of a dropped read are lost; drop it only to end the session.
    pub(crate) async fn next(&mut self, stream: &TcpStream) -> Result<Frame, HaError> {
        let frame = self.next_any_shard(stream).await?;
        if frame.shard_id != self.shard_id {
            return Err(HaError::Protocol(format!(
                "{:?} for shard {} on shard {}'s connection",
                frame.body.frame_type(),
                frame.shard_id,
                self.shard_id
            )));
        }
        Ok(frame)
    }

    /// [`FrameReader::next`] without the shard check: for the Hello, which the master answers
    /// with a refusal when it names another shard.
    pub(crate) async fn next_any_shard(&mut self, stream: &TcpStream) -> Result<Frame, HaError> {
        loop {
            if let Some(frame) = ha::decode(&mut self.buf)? {
                return self.checked(frame);
            }
            let wanted = match ha::peek_header(&self.buf)? {
                Some(header) => header.frame_size() - self.buf.len(),
                None => HA_READ_SIZE_MIN,
            };
            self.buf.reserve(wanted);
            let mut reader = stream;
            let buf = std::mem::take(&mut self.buf);
            // `append` reads after the buffered bytes (`read` would overwrite them).
            let BufResult(result, buf) = reader.append(buf).await;
            self.buf = buf;
            if result? == 0 {
                return Err(HaError::Closed);
            }
        }
    }

    /// [`FrameReader::next`] for a reader moved into the future (so a `select` can keep the
    /// read pending while another branch runs).
    pub(crate) async fn next_owned(mut self, stream: &TcpStream) -> (Self, Result<Frame, HaError>) {
        let result = self.next(stream).await;
        (self, result)
    }

    fn checked(&self, frame: Frame) -> Result<Frame, HaError> {
        let frame_type = frame.body.frame_type();
        if frame_type.sender() != self.from {
            return Err(HaError::Protocol(format!(
                "{frame_type:?} from the wrong side"
            )));
        }
        Ok(frame)
    }
}

/// Writes one control frame (anything but Data with bytes).
pub(crate) async fn write_frame(stream: &TcpStream, frame: &Frame) -> Result<(), HaError> {
    let mut out = BytesMut::new();
    ha::encode(frame, &mut out)?;
    let mut writer = stream;
    let BufResult(result, _) = writer.write_all(out).await;
    result?;
    Ok(())
}

/// Writes a Data frame carrying `bytes` without copying them (header and bytes in one
/// vectored write).
pub(crate) async fn write_data(
    stream: &TcpStream,
    shard_id: u16,
    start_offset: u64,
    master_appended_end: u64,
    bytes: Bytes,
) -> Result<(), HaError> {
    let mut prefix = BytesMut::new();
    ha::encode_data_prefix(
        shard_id,
        start_offset,
        master_appended_end,
        &bytes,
        &mut prefix,
    )?;
    let mut writer = stream;
    let BufResult(result, _) = writer.write_vectored_all([prefix.freeze(), bytes]).await;
    result?;
    Ok(())
}

/// The peer's address for logs (`0.0.0.0:0` if the socket no longer knows it).
pub(crate) fn peer_of(stream: &TcpStream) -> std::net::SocketAddr {
    stream
        .peer_addr()
        .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)))
}
