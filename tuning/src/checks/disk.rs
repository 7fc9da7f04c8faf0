//! Rules for the store directory: its filesystem, mount options and the queue attributes of the
//! disk behind it. Each rule is a pure function of the observed host; without a data directory
//! (or without a block device, as on tmpfs) the device rules report "not available".
//! Must never read the host or guess a device that the probe did not find.

use super::{Context, Judgement, Remedy, Verdict};
use crate::host::Reading;
use crate::parse;
use crate::probe::{BlockDevice, DataDir, DataDirProbe, Observed};

/// Smallest O_DIRECT alignment the store uses (storage `limits::BLOCK_SIZE_MIN`): a device with
/// logical blocks up to this size costs nothing extra.
pub const DIRECT_IO_ALIGNMENT_BYTES: u64 = 4096;

/// Largest logical block size the store accepts (storage `limits::BLOCK_SIZE_MAX`); above it
/// the store refuses to open its files. Between the two, every group commit rewrites a whole
/// larger partial block: more write amplification.
pub const DIRECT_IO_BLOCK_SIZE_MAX: u64 = 64 * 1024;

/// Fewest block-layer requests per hardware queue before parallel shard I/O starts queueing in
/// the kernel instead of the device.
pub const NR_REQUESTS_MIN: u64 = 128;

/// Largest readahead worth having for the buffered consume-queue and index reads (KiB).
pub const READ_AHEAD_KB_MAX: u64 = 128;

/// Local filesystems with well-tested O_DIRECT + fdatasync semantics.
const GOOD_FILESYSTEMS: &[&str] = &["ext4", "xfs"];

/// Filesystems where O_DIRECT is unsupported, emulated, not durable or not local.
const BAD_FILESYSTEMS: &[&str] = &[
    "tmpfs", "ramfs", "overlay", "aufs", "nfs", "nfs4", "cifs", "smb3", "9p", "virtiofs",
    "squashfs", "vfat", "exfat", "ntfs", "ntfs3",
];

fn data_dir<'a>(observed: &'a Observed, recommended: &str) -> Result<&'a DataDir, Judgement> {
    match &observed.data_dir {
        DataDirProbe::Resolved(data_dir) => Ok(data_dir),
        DataDirProbe::NotGiven => Err(Judgement::unavailable(
            "not checked (no data directory given)".to_string(),
            recommended,
        )),
        DataDirProbe::Unresolved { reason, .. } => Err(Judgement::unavailable(
            format!("not available ({reason})"),
            recommended,
        )),
    }
}

fn device<'a>(observed: &'a Observed, recommended: &str) -> Result<&'a BlockDevice, Judgement> {
    let data_dir = data_dir(observed, recommended)?;
    match &data_dir.device {
        Reading::Value(device) => Ok(device),
        Reading::Missing => Err(Judgement::unavailable(
            format!(
                "not available (no block device behind {})",
                data_dir.mount.fs_type
            ),
            recommended,
        )),
        Reading::Unreadable(why) => Err(Judgement::unavailable(
            format!("not available ({why})"),
            recommended,
        )),
    }
}

/// A queue attribute of the device, or the "not available" judgement.
fn queue_value<'a>(
    device: &'a BlockDevice,
    reading: &'a Reading,
    attribute: &str,
    recommended: &str,
) -> Result<&'a str, Judgement> {
    let path = queue_path(device, attribute);
    super::require(reading, &path, recommended).map(String::as_str)
}

fn queue_path(device: &BlockDevice, attribute: &str) -> String {
    format!("/sys/block/{}/queue/{attribute}", device.name)
}

/// Collapses `Result<Judgement, Judgement>` (early "not available" returns) into one value.
fn settle(result: Result<Judgement, Judgement>) -> Judgement {
    result.unwrap_or_else(|unavailable| unavailable)
}

pub(super) fn data_dir_rule(observed: &Observed, _: &Context) -> Judgement {
    let recommended = "the broker's store directory (--data-dir)";
    settle(data_dir(observed, recommended).map(|data_dir| {
        let device = data_dir
            .device
            .value()
            .map_or("no block device", |device| device.name.as_str());
        let current = format!(
            "{} on {} ({} {}, {device})",
            data_dir.resolved.display(),
            data_dir.mount.mount_point.display(),
            data_dir.mount.fs_type,
            data_dir.mount.source,
        );
        Judgement::new(Verdict::Met, current, recommended)
    }))
}

pub(super) fn fs_type(observed: &Observed, _: &Context) -> Judgement {
    let recommended = "ext4 or xfs (local)";
    settle(data_dir(observed, recommended).map(|data_dir| {
        let mount = &data_dir.mount;
        let fs = mount.fs_type.as_str();
        let journaled_data = fs == "ext4"
            && mount
                .super_options
                .iter()
                .any(|option| option == "data=journal");
        let (verdict, current) = if journaled_data {
            (
                Verdict::Missed,
                "ext4 data=journal (O_DIRECT silently falls back to buffered)".to_string(),
            )
        } else if GOOD_FILESYSTEMS.contains(&fs) {
            (Verdict::Met, fs.to_string())
        } else if BAD_FILESYSTEMS.contains(&fs) || fs.starts_with("fuse") {
            (Verdict::Missed, format!("{fs} (no durable O_DIRECT)"))
        } else {
            (Verdict::Short, format!("{fs} (O_DIRECT semantics vary)"))
        };
        Judgement::new(verdict, current, recommended).with(Remedy::Manual {
            note: format!(
                "move the store off {} ({fs}) onto a local ext4 or xfs filesystem",
                mount.mount_point.display()
            ),
        })
    }))
}

pub(super) fn barrier(observed: &Observed, _: &Context) -> Judgement {
    let recommended = "barriers on (no nobarrier / barrier=0)";
    settle(data_dir(observed, recommended).map(|data_dir| {
        let mount = &data_dir.mount;
        let off = mount
            .mount_options
            .iter()
            .chain(&mount.super_options)
            .find(|option| matches!(option.as_str(), "nobarrier" | "barrier=0"));
        match off {
            None => Judgement::new(Verdict::Met, "on".to_string(), recommended),
            Some(option) => {
                Judgement::new(Verdict::Missed, option.clone(), recommended).with(Remedy::Remount {
                    mount_point: mount.mount_point.clone(),
                    option: "barrier".to_string(),
                })
            }
        }
    }))
}

pub(super) fn noatime(observed: &Observed, _: &Context) -> Judgement {
    let recommended = "noatime";
    settle(data_dir(observed, recommended).map(|data_dir| {
        let mount = &data_dir.mount;
        let atime = mount
            .mount_options
            .iter()
            .find(|option| option.ends_with("atime") && !option.contains("diratime"))
            .map_or("relatime (default)", String::as_str);
        Judgement::new(
            Verdict::when(atime == "noatime"),
            atime.to_string(),
            recommended,
        )
        .with(Remedy::Remount {
            mount_point: mount.mount_point.clone(),
            option: "noatime".to_string(),
        })
    }))
}

pub(super) fn logical_block_size(observed: &Observed, _: &Context) -> Judgement {
    let recommended =
        format!("<= {DIRECT_IO_ALIGNMENT_BYTES} (<= {DIRECT_IO_BLOCK_SIZE_MAX} accepted)");
    settle(device(observed, &recommended).and_then(|device| {
        let reading = &device.logical_block_size;
        let text = queue_value(device, reading, "logical_block_size", &recommended)?;
        let Some(size) = parse::parse_u64(text) else {
            let current = format!("unparseable: {text}");
            return Ok(Judgement::unavailable(current, recommended.clone()));
        };
        let verdict = if size <= DIRECT_IO_ALIGNMENT_BYTES {
            Verdict::Met
        } else if size <= DIRECT_IO_BLOCK_SIZE_MAX {
            Verdict::Short
        } else {
            Verdict::Missed
        };
        let note = format!(
            "{} has {size}-byte logical blocks: use another device",
            device.name
        );
        Ok(
            Judgement::new(verdict, text.to_string(), recommended.clone())
                .with(Remedy::Manual { note }),
        )
    }))
}

/// `Some(true)` if the device says it is rotational.
fn is_rotational(device: &BlockDevice) -> Option<bool> {
    device
        .rotational
        .value()
        .and_then(|text| parse::parse_u64(text))
        .map(|flag| flag != 0)
}

pub(super) fn rotational(observed: &Observed, _: &Context) -> Judgement {
    let recommended = "0 (SSD/NVMe)";
    settle(device(observed, recommended).and_then(|device| {
        let text = queue_value(device, &device.rotational, "rotational", recommended)?;
        let (verdict, current) = match is_rotational(device) {
            Some(false) => (Verdict::Met, "0".to_string()),
            Some(true) => (
                Verdict::Missed,
                format!("1 ({} reports a spinning disk)", device.name),
            ),
            None => {
                return Ok(Judgement::unavailable(
                    format!("unparseable: {text}"),
                    recommended,
                ))
            }
        };
        Ok(
            Judgement::new(verdict, current, recommended).with(Remedy::Manual {
                note: format!(
                    "put the store on flash; if {} is a virtual disk backed by flash, \
                 echo 0 > {}",
                    device.name,
                    queue_path(device, "rotational")
                ),
            }),
        )
    }))
}

pub(super) fn scheduler(observed: &Observed, _: &Context) -> Judgement {
    let recommended_flash = "none or mq-deadline";
    settle(device(observed, recommended_flash).and_then(|device| {
        let text = queue_value(device, &device.scheduler, "scheduler", recommended_flash)?;
        let Some(selected) = parse::parse_selected(text) else {
            return Ok(Judgement::unavailable(
                format!("unparseable: {text}"),
                recommended_flash,
            ));
        };
        let (accepted, set, recommended): (&[&str], &str, &str) = match is_rotational(device) {
            Some(true) => (
                &["mq-deadline", "bfq"],
                "mq-deadline",
                "mq-deadline (rotational)",
            ),
            Some(false) | None => (&["none", "mq-deadline"], "none", recommended_flash),
        };
        Ok(Judgement::new(
            Verdict::when(accepted.contains(&selected)),
            selected.to_string(),
            recommended,
        )
        .with(Remedy::WriteSysfs {
            path: queue_path(device, "scheduler"),
            value: set.to_string(),
        }))
    }))
}

pub(super) fn nr_requests(observed: &Observed, _: &Context) -> Judgement {
    let recommended = format!(">= {NR_REQUESTS_MIN}");
    settle(device(observed, &recommended).and_then(|device| {
        let text = queue_value(device, &device.nr_requests, "nr_requests", &recommended)?;
        let Some(value) = parse::parse_u64(text) else {
            return Ok(Judgement::unavailable(
                format!("unparseable: {text}"),
                recommended.clone(),
            ));
        };
        Ok(Judgement::new(
            Verdict::when(value >= NR_REQUESTS_MIN),
            text.to_string(),
            recommended.clone(),
        )
        .with(Remedy::WriteSysfs {
            path: queue_path(device, "nr_requests"),
            value: (NR_REQUESTS_MIN * 2).to_string(),
        }))
    }))
}

pub(super) fn read_ahead_kb(observed: &Observed, _: &Context) -> Judgement {
    let recommended = format!("<= {READ_AHEAD_KB_MAX}");
    settle(device(observed, &recommended).and_then(|device| {
        let text = queue_value(device, &device.read_ahead_kb, "read_ahead_kb", &recommended)?;
        let Some(value) = parse::parse_u64(text) else {
            return Ok(Judgement::unavailable(
                format!("unparseable: {text}"),
                recommended.clone(),
            ));
        };
        Ok(Judgement::new(
            Verdict::when(value <= READ_AHEAD_KB_MAX),
            text.to_string(),
            recommended.clone(),
        )
        .with(Remedy::WriteSysfs {
            path: queue_path(device, "read_ahead_kb"),
            value: READ_AHEAD_KB_MAX.to_string(),
        }))
    }))
}
