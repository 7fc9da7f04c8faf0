//! The store checkpoint (`store.checkpoint`): how far the consume queues and the index are
//! known durable, and every queue's offsets at that point. Encoding is pure; writing is atomic
//! through [`crate::atomic_file`] (temp file, fsync, rename, directory fsync). The frame is the
//! shared `crate::checkpoint::FrameFormat` with its own magic and CRC constant and without the
//! 1 MiB payload cap of [`crate::checkpoint::write_atomic`], because the queue list grows with
//! the number of queues: at most [`CHECKPOINT_BYTES_BOUND`] (17.3 MiB) for `CQ_QUEUES_MAX`
//! (65,536) queues with 255-byte topic names, about 2.6 MiB with 20-byte names.
//!
//! Layout (little-endian): magic "RMQS" u32, version u16, reserved u16 (must be 0), payload
//! length u32, CRC-32 of the payload xor a constant u32, then the payload: `dispatched_phys`
//! u64, `index_phys` u64, queue count u32, and per queue: topic length u16, topic bytes, queue
//! id i32, min offset u64, max offset u64.
//!
//! Must never: write the checkpoint in place, or trust one whose frame or CRC is wrong.

use std::path::Path;

use crate::atomic_file;
use crate::checkpoint::FrameFormat;
use crate::consume_queue::{QueueSnapshot, CQ_QUEUES_MAX};
use crate::error::{Result, StorageError};
use crate::file::Disk;
use crate::limits::TOPIC_LEN_MAX;

/// File name in the store root.
pub const STORE_CHECKPOINT_FILE_NAME: &str = "store.checkpoint";

/// The store checkpoint's frame: "RMQS", version 1, no payload cap beyond `u32`, reserved field
/// must be 0.
const FRAME: FrameFormat = FrameFormat {
    magic: u32::from_le_bytes(*b"RMQS"),
    version: 1,
    crc_xor: 0x3c6e_f372,
    payload_max: u32::MAX as usize,
    reserved_must_be_zero: true,
};

/// Bytes one queue takes in the payload at most: topic length, topic, queue id, min, max.
const QUEUE_RECORD_BYTES_MAX: usize = 2 + TOPIC_LEN_MAX + 4 + 8 + 8;

/// Largest store checkpoint file: frame header (16 bytes), the three fixed payload fields
/// (20 bytes), and every queue the store may hold with the longest topic name.
pub const CHECKPOINT_BYTES_BOUND: usize = 16 + 20 + CQ_QUEUES_MAX * QUEUE_RECORD_BYTES_MAX;

const _: () = {
    assert!(
        CHECKPOINT_BYTES_BOUND - 16 <= u32::MAX as usize,
        "the payload length is a u32"
    );
    assert!(
        CHECKPOINT_BYTES_BOUND <= 18 * 1024 * 1024,
        "the bound stated in the module doc (17.3 MiB) holds"
    );
};

/// What the store checkpoint records.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreCheckpoint {
    /// Every record before this CommitLog offset is in the consume queues as listed.
    pub dispatched_phys: u64,
    /// Every record before this CommitLog offset is in sealed index files.
    pub index_phys: u64,
    /// Offsets of every queue at `dispatched_phys`.
    pub queues: Vec<QueueSnapshot>,
}

/// Encodes a checkpoint file.
///
/// # Panics
/// If a topic is longer than `u16::MAX` bytes (topics are validated far below that).
#[must_use]
pub fn encode(checkpoint: &StoreCheckpoint) -> Vec<u8> {
    let mut payload = Vec::with_capacity(20 + checkpoint.queues.len() * 40);
    payload.extend_from_slice(&checkpoint.dispatched_phys.to_le_bytes());
    payload.extend_from_slice(&checkpoint.index_phys.to_le_bytes());
    let count = u32::try_from(checkpoint.queues.len()).expect("queue count bounded");
    payload.extend_from_slice(&count.to_le_bytes());
    for queue in &checkpoint.queues {
        let topic_len = u16::try_from(queue.topic.len()).expect("topic length validated");
        payload.extend_from_slice(&topic_len.to_le_bytes());
        payload.extend_from_slice(queue.topic.as_bytes());
        payload.extend_from_slice(&queue.queue_id.to_le_bytes());
        payload.extend_from_slice(&queue.min_offset.to_le_bytes());
        payload.extend_from_slice(&queue.max_offset.to_le_bytes());
    }
    FRAME.encode(&payload)
}

/// A bounds-checked little-endian reader.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(len)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// Decodes a checkpoint file; `None` when the frame, CRC or payload is malformed.
#[must_use]
pub fn decode(bytes: &[u8]) -> Option<StoreCheckpoint> {
    let payload = FRAME.decode(bytes).ok()?;
    let mut reader = Reader {
        bytes: payload,
        at: 0,
    };
    let dispatched_phys = reader.u64()?;
    let index_phys = reader.u64()?;
    let count = reader.u32()?;
    let mut queues = Vec::new();
    for _ in 0..count {
        let topic_len = usize::from(reader.u16()?);
        let topic = String::from_utf8(reader.take(topic_len)?.to_vec()).ok()?;
        let queue_id = i32::from_le_bytes(reader.take(4)?.try_into().ok()?);
        let min_offset = reader.u64()?;
        let max_offset = reader.u64()?;
        if min_offset > max_offset {
            return None;
        }
        queues.push(QueueSnapshot {
            topic,
            queue_id,
            min_offset,
            max_offset,
        });
    }
    (reader.at == payload.len()).then_some(StoreCheckpoint {
        dispatched_phys,
        index_phys,
        queues,
    })
}

/// Writes the checkpoint atomically into `dir`.
///
/// # Errors
/// I/O errors; the previous checkpoint is then still intact.
pub async fn write(disk: &Disk, dir: &Path, checkpoint: &StoreCheckpoint) -> Result<()> {
    let bytes = encode(checkpoint);
    assert_eq!(
        decode(&bytes).as_ref(),
        Some(checkpoint),
        "checkpoint round trip"
    );
    atomic_file::replace(disk, &dir.join(STORE_CHECKPOINT_FILE_NAME), bytes, false).await
}

/// Reads the checkpoint in `dir`: `Ok(None)` when there is none.
///
/// # Errors
/// I/O errors; [`StorageError::Corrupt`] when the file exists but does not decode.
pub async fn read(disk: &Disk, dir: &Path) -> Result<Option<StoreCheckpoint>> {
    let path = dir.join(STORE_CHECKPOINT_FILE_NAME);
    let Some(bytes) = disk.read_small_file(&path).await? else {
        return Ok(None);
    };
    decode(&bytes)
        .map(Some)
        .ok_or_else(|| StorageError::Corrupt {
            path,
            offset: 0,
            reason: "store checkpoint frame, CRC or payload invalid".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoreCheckpoint {
        StoreCheckpoint {
            dispatched_phys: 12_345,
            index_phys: 999,
            queues: vec![
                QueueSnapshot {
                    topic: "T".into(),
                    queue_id: 0,
                    min_offset: 0,
                    max_offset: 10,
                },
                QueueSnapshot {
                    topic: "%RETRY%g".into(),
                    queue_id: 7,
                    min_offset: 5,
                    max_offset: 5,
                },
            ],
        }
    }

    #[test]
    fn round_trip() {
        let bytes = encode(&sample());
        assert_eq!(decode(&bytes), Some(sample()));
        assert_eq!(
            decode(&encode(&StoreCheckpoint::default())),
            Some(StoreCheckpoint::default())
        );
    }

    /// Pins the on-disk format: any change here breaks every existing store checkpoint.
    #[test]
    fn golden_bytes() {
        let checkpoint = StoreCheckpoint {
            dispatched_phys: 1,
            index_phys: 2,
            queues: vec![QueueSnapshot {
                topic: "T".into(),
                queue_id: 3,
                min_offset: 4,
                max_offset: 5,
            }],
        };
        let golden: &[u8] = &[
            0x52, 0x4d, 0x51, 0x53, 0x01, 0x00, 0x00, 0x00, 0x2b, 0x00, 0x00, 0x00, 0x73, 0x22,
            0xc2, 0xac, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x54, 0x03, 0x00, 0x00,
            0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00,
        ];
        assert_eq!(encode(&checkpoint), golden);
        assert_eq!(decode(golden), Some(checkpoint));
    }

    /// The size bound stated for `CQ_QUEUES_MAX` queues follows the encoding.
    #[test]
    fn size_bound_matches_the_encoding() {
        let empty = encode(&StoreCheckpoint::default()).len();
        assert_eq!(empty, 16 + 20);
        let longest = StoreCheckpoint {
            queues: vec![QueueSnapshot {
                topic: "t".repeat(TOPIC_LEN_MAX),
                queue_id: i32::MAX,
                min_offset: 0,
                max_offset: u64::MAX,
            }],
            ..StoreCheckpoint::default()
        };
        assert_eq!(encode(&longest).len() - empty, QUEUE_RECORD_BYTES_MAX);
        assert_eq!(
            CHECKPOINT_BYTES_BOUND,
            empty + CQ_QUEUES_MAX * QUEUE_RECORD_BYTES_MAX
        );
    }

    #[test]
    fn any_damage_is_rejected() {
        let bytes = encode(&sample());
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            assert_eq!(decode(&damaged), None, "byte {at} flipped");
        }
        for len in 0..bytes.len() {
            assert_eq!(decode(&bytes[..len]), None, "truncated to {len}");
        }
        assert_eq!(decode(&[0u8; 64]), None);
    }
}
