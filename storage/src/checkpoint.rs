//! Small metadata files: framed checkpoints (offsets known durable) and markers.
//!
//! Owns the crate's frame codec (`FrameFormat`): a payload is framed as `[magic u32][version
//! u16][reserved u16][len u32][crc u32][payload]` (little-endian; the CRC is CRC-32 of the
//! payload xored with a per-format constant). [`write_atomic`] / [`read`] use it with the "RMQC"
//! format and replace the file through [`crate::atomic_file`] (temp file, fsync, rename,
//! directory fsync), so a reader sees the old file or the new one, never a mix; a damaged file is
//! reported, not trusted. The store checkpoint reuses the codec with its own format. Also owns
//! the marker helpers (e.g. the CommitLog's abort marker).
//!
//! Must never: write a checkpoint in place, trust a checkpoint whose frame or CRC is wrong, or
//! carry bulk data (payload at most [`CHECKPOINT_BYTES_MAX`]). Anyone in the crate may reuse it
//! (consume queue and index checkpoints).

use std::path::Path;

use crate::atomic_file;
use crate::error::{Result, StorageError};
use crate::file::Disk;
use crate::limits::CHECKPOINT_BYTES_MAX;

/// Bytes before the payload in every frame.
const FRAME_HEADER_BYTES: usize = 16;

/// One framed file format: `[magic u32][version u16][reserved u16][len u32][crc u32][payload]`,
/// little-endian, where `crc` is CRC-32 of the payload xored with `crc_xor` (so an all-zero file
/// never validates). Every framed small file of the crate encodes and checks through this.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameFormat {
    /// Identifies the kind of file.
    pub(crate) magic: u32,
    /// The only version written and accepted.
    pub(crate) version: u16,
    /// Xored into the payload CRC.
    pub(crate) crc_xor: u32,
    /// Largest payload written or accepted.
    pub(crate) payload_max: usize,
    /// Whether a frame whose reserved field is not 0 is rejected (the writer always writes 0).
    pub(crate) reserved_must_be_zero: bool,
}

impl FrameFormat {
    /// Frames `payload`.
    ///
    /// # Panics
    /// If `payload` is longer than `payload_max` (or `u32::MAX`) bytes.
    pub(crate) fn encode(&self, payload: &[u8]) -> Vec<u8> {
        assert!(payload.len() <= self.payload_max, "frame payload too large");
        let len = u32::try_from(payload.len()).expect("frame payload bounded");
        let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
        frame.extend_from_slice(&self.magic.to_le_bytes());
        frame.extend_from_slice(&self.version.to_le_bytes());
        frame.extend_from_slice(&0u16.to_le_bytes());
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&self.payload_crc(payload).to_le_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    /// The payload of a whole frame, or why the frame is not valid.
    pub(crate) fn decode<'a>(&self, bytes: &'a [u8]) -> std::result::Result<&'a [u8], String> {
        if bytes.len() < FRAME_HEADER_BYTES {
            return Err(format!(
                "checkpoint of {} bytes is shorter than its header",
                bytes.len()
            ));
        }
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        if word(0) != self.magic {
            return Err(format!("bad checkpoint magic {:#x}", word(0)));
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != self.version {
            return Err(format!("unknown checkpoint version {version}"));
        }
        let reserved = u16::from_le_bytes([bytes[6], bytes[7]]);
        if self.reserved_must_be_zero && reserved != 0 {
            return Err(format!("checkpoint reserved field {reserved:#x} is not 0"));
        }
        let len = word(8) as usize;
        if len > self.payload_max || FRAME_HEADER_BYTES + len != bytes.len() {
            return Err(format!(
                "checkpoint length {len} disagrees with file size {}",
                bytes.len()
            ));
        }
        let payload = &bytes[FRAME_HEADER_BYTES..];
        if self.payload_crc(payload) != word(12) {
            return Err("checkpoint CRC mismatch".to_string());
        }
        Ok(payload)
    }

    fn payload_crc(&self, payload: &[u8]) -> u32 {
        crc32fast::hash(payload) ^ self.crc_xor
    }
}

/// The frame of [`write_atomic`] / [`read`] files: "RMQC", version 1, at most
/// [`CHECKPOINT_BYTES_MAX`] of payload; the reserved field is not checked.
const CHECKPOINT_FRAME: FrameFormat = FrameFormat {
    magic: u32::from_le_bytes(*b"RMQC"),
    version: 1,
    crc_xor: 0xA5C3_5A3C,
    payload_max: CHECKPOINT_BYTES_MAX,
    reserved_must_be_zero: false,
};

/// Writes `payload` as `dir/name` atomically (temp file, fsync, rename, directory fsync; see
/// [`atomic_file::replace`]).
///
/// # Errors
/// [`StorageError::Io`] / [`StorageError::DiskFull`] from any step; on error the previous
/// version of the file (if any) is still intact.
///
/// # Panics
/// If `payload` exceeds [`CHECKPOINT_BYTES_MAX`] or `name` contains a `/`.
pub async fn write_atomic(disk: &Disk, dir: &Path, name: &str, payload: &[u8]) -> Result<()> {
    assert!(
        payload.len() <= CHECKPOINT_BYTES_MAX,
        "checkpoint payload too large"
    );
    assert!(
        !name.contains('/'),
        "checkpoint name must be a plain file name"
    );
    let frame = CHECKPOINT_FRAME.encode(payload);
    assert_eq!(
        CHECKPOINT_FRAME.decode(&frame).ok(),
        Some(payload),
        "frame round trip"
    );
    atomic_file::replace(disk, &dir.join(name), frame, false).await
}

/// Reads `dir/name` written by [`write_atomic`]. `Ok(None)` if it does not exist.
///
/// # Errors
/// [`StorageError::Io`] on read failure, [`StorageError::Corrupt`] if the frame, length or CRC
/// is wrong.
pub async fn read(disk: &Disk, dir: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    let path = dir.join(name);
    let Some(bytes) = disk.read_small_file(&path).await? else {
        return Ok(None);
    };
    match CHECKPOINT_FRAME.decode(&bytes) {
        Ok(payload) => Ok(Some(payload.to_vec())),
        Err(reason) => Err(StorageError::Corrupt {
            path,
            offset: 0,
            reason,
        }),
    }
}

/// Creates an empty marker file `dir/name` and makes its existence durable.
///
/// # Errors
/// [`StorageError::Io`] / [`StorageError::DiskFull`].
pub async fn create_marker(disk: &Disk, dir: &Path, name: &str) -> Result<()> {
    disk.write_small_file(&dir.join(name), Vec::new()).await?;
    disk.sync_dir(dir).await
}

/// Removes the marker file `dir/name` (missing is fine) and makes the removal durable.
///
/// # Errors
/// [`StorageError::Io`].
pub async fn remove_marker(disk: &Disk, dir: &Path, name: &str) -> Result<()> {
    disk.remove_file(&dir.join(name)).await?;
    disk.sync_dir(dir).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::with_scratch_disk;

    #[test]
    fn write_read_replace() {
        with_scratch_disk("checkpoint-rw", |disk, dir| async move {
            assert_eq!(read(&disk, &dir, "cp").await.expect("read"), None);
            let writes: [(&str, &[u8]); 3] =
                [("cp", b"first"), ("cp", b"second, longer"), ("empty", b"")];
            for (name, payload) in writes {
                write_atomic(&disk, &dir, name, payload)
                    .await
                    .expect("write");
                let got = read(&disk, &dir, name).await.expect("read");
                assert_eq!(got.as_deref(), Some(payload));
            }
            assert!(!dir.join("cp.tmp").exists(), "temp file renamed away");
        });
    }

    #[test]
    fn damaged_checkpoints_are_rejected() {
        with_scratch_disk("checkpoint-bad", |disk, dir| async move {
            write_atomic(&disk, &dir, "cp", b"payload")
                .await
                .expect("write");
            let path = dir.join("cp");
            let good = std::fs::read(&path).expect("read file");
            let mut flipped = good.clone();
            *flipped.last_mut().expect("non-empty") ^= 1;
            let cases: Vec<Vec<u8>> = vec![
                flipped,
                good[..good.len() - 1].to_vec(),
                vec![0; good.len()],
                vec![1, 2, 3],
            ];
            for bad in cases {
                std::fs::write(&path, &bad).expect("damage");
                let error = read(&disk, &dir, "cp").await.expect_err("must be rejected");
                assert!(matches!(error, StorageError::Corrupt { .. }), "{error}");
            }
        });
    }

    /// Pins the on-disk frame: any change here breaks every existing checkpoint.
    #[test]
    fn golden_frame_bytes() {
        let golden: &[u8] = &[
            0x52, 0x4d, 0x51, 0x43, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x51, 0x12,
            0x40, 0x3b, 0x61, 0x62,
        ];
        assert_eq!(CHECKPOINT_FRAME.encode(b"ab"), golden);
        assert_eq!(CHECKPOINT_FRAME.decode(golden), Ok(&b"ab"[..]));
        // This format has never checked the reserved field.
        let mut reserved = golden.to_vec();
        reserved[6] = 1;
        assert_eq!(CHECKPOINT_FRAME.decode(&reserved), Ok(&b"ab"[..]));
    }

    #[test]
    fn markers() {
        with_scratch_disk("checkpoint-marker", |disk, dir| async move {
            create_marker(&disk, &dir, "abort").await.expect("create");
            assert!(disk.exists(&dir.join("abort")).await);
            remove_marker(&disk, &dir, "abort").await.expect("remove");
            assert!(!disk.exists(&dir.join("abort")).await);
            remove_marker(&disk, &dir, "abort")
                .await
                .expect("remove missing is fine");
        });
    }
}
