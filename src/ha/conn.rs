//! Framed reads and writes of HA frames on a `compio` TCP stream (shared by both sides).
//!
//! Owns the per-connection read buffer: it grows to the frame the buffered header announces
//! (at most `HA_FRAME_SIZE_MAX`), never more; a frame of `HA_POOLED_FRAME_BYTES_MIN` or more
//! is read into a block of the store's per-thread buffer pool instead (no fresh pages per
//! catch-up frame). Must never: hand out a frame from the wrong side
//! of the connection or for another shard, or write a frame the codec did not check.

use bytes::{Bytes, BytesMut};
use compio::buf::{BufResult, IntoInner, IoBuf};
use compio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use compio::net::TcpStream;
use rmq_net::ha::{self, Frame, Sender};

use super::HaError;
use rmq_storage::align::AlignedBuf;

use crate::limits::{HA_POOLED_FRAME_ALIGNMENT, HA_POOLED_FRAME_BYTES_MIN, HA_READ_SIZE_MIN};

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
                Some(header) if header.frame_size() >= HA_POOLED_FRAME_BYTES_MIN => {
                    let frame = self.read_pooled(stream, header.frame_size()).await?;
                    return self.checked(frame);
                }
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

    /// Reads the frame of `size` bytes that starts the buffer into a pooled block (every
    /// buffered byte is part of it: fewer than `size` are buffered) and decodes it; a Data
    /// frame's bytes keep the block, which goes back to this thread's pool when they drop.
    async fn read_pooled(&mut self, stream: &TcpStream, size: usize) -> Result<Frame, HaError> {
        let buffered = self.buf.len();
        assert!(
            buffered < size,
            "a whole buffered frame is decoded in place"
        );
        let mut block = AlignedBuf::for_read(size, HA_POOLED_FRAME_ALIGNMENT);
        block.as_full_mut_slice()[..buffered].copy_from_slice(&self.buf);
        block.set_len_initialised(buffered);
        self.buf.clear();
        let mut filled = buffered;
        let mut reader = stream;
        while filled < size {
            // A slice starts at most at the block's length; a read into it writes from its
            // start and sets the block's length to the slice start plus what was read.
            let BufResult(result, slice) = reader.read(block.slice(filled..size)).await;
            block = slice.into_inner();
            let read = result?;
            if read == 0 {
                return Err(HaError::Closed);
            }
            filled += read;
        }
        block.set_len_initialised(size);
        Ok(ha::decode_whole(&block.into_bytes(0, size))?)
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use compio::net::TcpListener;
    use rmq_net::ha::{Body, Data, Probe};

    use super::*;

    fn data(start_offset: u64, len: usize) -> Frame {
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        Frame {
            shard_id: 1,
            body: Body::Data(Data {
                start_offset,
                master_appended_end: start_offset + len as u64,
                bytes: Bytes::from(bytes),
            }),
        }
    }

    /// Frames above and below the pooled size, sent in pieces that split headers and
    /// payloads, come out whole and in order: a pooled read starts from the bytes already
    /// buffered and leaves the next frame's bytes in the socket.
    #[test]
    fn pooled_and_buffered_frames_read_back_in_order() {
        let runtime = crate::runtime::new_runtime().expect("runtime");
        runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let address = listener.local_addr().expect("address");
            let big = HA_POOLED_FRAME_BYTES_MIN + 12_345;
            let frames = vec![
                data(0, 100),
                data(100, big),
                Frame {
                    shard_id: 1,
                    body: Body::Probe(Probe { offset: 7 }),
                },
                data(100 + big as u64, big * 3),
                data(100 + 4 * big as u64, 10),
            ];
            let mut wire = BytesMut::new();
            for frame in &frames {
                ha::encode(frame, &mut wire).expect("encodes");
            }
            let wire = wire.freeze();
            let sender = compio::runtime::spawn(async move {
                let stream = TcpStream::connect(address).await.expect("connect");
                let mut writer = &stream;
                // Uneven pieces, so reads end inside headers and payloads.
                for piece in wire.chunks(100_003) {
                    let BufResult(result, _) = writer.write_all(piece.to_vec()).await;
                    result.expect("write");
                    compio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
                stream
            });
            let (stream, _) = listener.accept().await.expect("accept");
            let mut reader = FrameReader::new(1, Sender::Master);
            for expected in &frames {
                let frame = reader.next(&stream).await.expect("a frame");
                assert_eq!(&frame, expected);
            }
            drop(sender.await);
            assert!(matches!(reader.next(&stream).await, Err(HaError::Closed)));
        });
    }
}
