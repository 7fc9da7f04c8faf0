//! Small metadata files written atomically: checkpoints (offsets known durable) and markers.
//!
//! Owns [`write_atomic`] / [`read`]: a payload is framed as `[magic u32][version u16][reserved
//! u16][len u32][crc u32][payload]` (little-endian; the CRC is CRC-32 of the payload xored with a
//! constant), written to `<name>.tmp`, fsynced, renamed over `<name>`, and the directory fsynced.
//! A reader sees the old file or the new one, never a mix; a damaged file is reported, not
//! trusted. Also owns the marker helpers (e.g. the CommitLog's abort marker).
//!
//! Must never: write a checkpoint in place, trust a checkpoint whose frame or CRC is wrong, or
//! carry bulk data (payload at most [`CHECKPOINT_BYTES_MAX`]). Anyone in the crate may reuse it
//! (consume queue and index checkpoints).

use std::path::Path;

use crate::error::{Result, StorageError};
use crate::file::Disk;
use crate::limits::CHECKPOINT_BYTES_MAX;

/// "RMQC" little-endian: identifies a checkpoint frame.
const CHECKPOINT_MAGIC: u32 = u32::from_le_bytes(*b"RMQC");
/// Frame format version.
const CHECKPOINT_VERSION: u16 = 1;
/// Xored into the CRC so an all-zero file never validates.
const CHECKPOINT_CRC_XOR: u32 = 0xA5C3_5A3C;
/// Bytes before the payload.
const FRAME_HEADER_BYTES: usize = 16;

/// Writes `payload` as `dir/name` atomically (temp file, fsync, rename, directory fsync).
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
    let frame = encode_frame(payload);
    assert_eq!(
        decode_frame(&frame, Path::new(name)).ok(),
        Some(payload),
        "frame round trip"
    );
    let target = dir.join(name);
    let temp = dir.join(format!("{name}.tmp"));
    disk.write_small_file(&temp, frame).await?;
    disk.rename(&temp, &target).await?;
    disk.sync_dir(dir).await
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
    decode_frame(&bytes, &path).map(|payload| Some(payload.to_vec()))
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

fn payload_crc(payload: &[u8]) -> u32 {
    crc32fast::hash(payload) ^ CHECKPOINT_CRC_XOR
}

fn encode_frame(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("payload bounded by CHECKPOINT_BYTES_MAX");
    let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    frame.extend_from_slice(&CHECKPOINT_MAGIC.to_le_bytes());
    frame.extend_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
    frame.extend_from_slice(&0u16.to_le_bytes());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&payload_crc(payload).to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

fn decode_frame<'a>(bytes: &'a [u8], path: &Path) -> Result<&'a [u8]> {
    let corrupt = |reason: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        offset: 0,
        reason,
    };
    if bytes.len() < FRAME_HEADER_BYTES {
        return Err(corrupt(format!(
            "checkpoint of {} bytes is shorter than its header",
            bytes.len()
        )));
    }
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    if word(0) != CHECKPOINT_MAGIC {
        return Err(corrupt(format!("bad checkpoint magic {:#x}", word(0))));
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != CHECKPOINT_VERSION {
        return Err(corrupt(format!("unknown checkpoint version {version}")));
    }
    let len = word(8) as usize;
    if len > CHECKPOINT_BYTES_MAX || FRAME_HEADER_BYTES + len != bytes.len() {
        return Err(corrupt(format!(
            "checkpoint length {len} disagrees with file size {}",
            bytes.len()
        )));
    }
    let payload = &bytes[FRAME_HEADER_BYTES..];
    if payload_crc(payload) != word(12) {
        return Err(corrupt("checkpoint CRC mismatch".to_string()));
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::scratch_dir_on_real_disk;

    fn run<F: std::future::Future>(future: F) -> F::Output {
        compio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(future)
    }

    #[test]
    fn write_read_replace() {
        let dir = scratch_dir_on_real_disk("checkpoint-rw").expect("scratch dir");
        run(async {
            let disk = Disk::real();
            assert_eq!(read(&disk, &dir, "cp").await.expect("read"), None);
            write_atomic(&disk, &dir, "cp", b"first")
                .await
                .expect("write");
            assert_eq!(
                read(&disk, &dir, "cp").await.expect("read").as_deref(),
                Some(&b"first"[..])
            );
            write_atomic(&disk, &dir, "cp", b"second, longer")
                .await
                .expect("write");
            let got = read(&disk, &dir, "cp").await.expect("read");
            assert_eq!(got.as_deref(), Some(&b"second, longer"[..]));
            assert!(!dir.join("cp.tmp").exists(), "temp file renamed away");
            write_atomic(&disk, &dir, "empty", b"")
                .await
                .expect("write empty");
            assert_eq!(
                read(&disk, &dir, "empty").await.expect("read").as_deref(),
                Some(&b""[..])
            );
        });
    }

    #[test]
    fn damaged_checkpoints_are_rejected() {
        let dir = scratch_dir_on_real_disk("checkpoint-bad").expect("scratch dir");
        run(async {
            let disk = Disk::real();
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

    #[test]
    fn markers() {
        let dir = scratch_dir_on_real_disk("checkpoint-marker").expect("scratch dir");
        run(async {
            let disk = Disk::real();
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
