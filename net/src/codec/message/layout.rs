//! Stored-record layout (PROTOCOL.md §6.6): magic codes, field offsets, the fixed overhead
//! (pinned by compile-time asserts), and in-place patching of an encoded record's offsets and
//! store timestamp for the CommitLog writer. Pure; must never write outside the field it
//! patches, or patch bytes that do not start with a record magic.

use super::super::error::CodecError;
use super::super::limits::PROPERTIES_SIZE_MAX;
use super::reader::Reader;
use super::sysflag::{self, BORNHOST_V6, STOREHOSTADDRESS_V6};

/// Magic of a v1 record (1-byte topic length). Java -626843481.
pub const MAGIC_CODE_V1: u32 = 0xDAA3_20A7;
/// Magic of a v2 record (2-byte topic length). Java -626843477.
pub const MAGIC_CODE_V2: u32 = 0xDAA3_20AB;
/// Magic of the CommitLog end-of-file filler. A store artefact: never a valid record.
pub const BLANK_MAGIC_CODE: u32 = 0xCBD4_3194;
/// Longest topic that still gets the v1 magic (Java `Byte.MAX_VALUE`): older clients may know
/// only v1, and Java reads the v1 topic length as a signed byte.
pub const TOPIC_V1_SIZE_MAX: usize = 127;
/// Longest topic the v2 form can carry (its length is an i16).
pub const TOPIC_V2_SIZE_MAX: usize = i16::MAX as usize;

/// Offset of TOTALSIZE.
pub const TOTAL_SIZE_OFFSET: usize = 0;
/// Offset of MAGICCODE.
pub const MAGIC_CODE_OFFSET: usize = 4;
/// Offset of BODYCRC.
pub const BODY_CRC_OFFSET: usize = 8;
/// Offset of QUEUEID.
pub const QUEUE_ID_OFFSET: usize = 12;
/// Offset of FLAG.
pub const FLAG_OFFSET: usize = 16;
/// Offset of QUEUEOFFSET.
pub const QUEUE_OFFSET_OFFSET: usize = 20;
/// Offset of PHYSICALOFFSET.
pub const PHYSICAL_OFFSET_OFFSET: usize = 28;
/// Offset of SYSFLAG.
pub const SYS_FLAG_OFFSET: usize = 36;
/// Offset of BORNTIMESTAMP.
pub const BORN_TIMESTAMP_OFFSET: usize = 40;
/// Offset of BORNHOST; every later offset depends on the host kinds ([`RecordLayout`]).
pub const BORN_HOST_OFFSET: usize = 48;
/// Bytes of an IPv4 host field: address 4 + port i32.
pub const HOST_V4_SIZE: usize = 4 + 4;
/// Bytes of an IPv6 host field: address 16 + port i32.
pub const HOST_V6_SIZE: usize = 16 + 4;
/// Bytes of the `PROPERTIES_LEN` field.
const PROPERTIES_LEN_SIZE: usize = 2;
/// Fixed overhead of a v1 record with IPv4 born and store hosts (PROTOCOL.md §6.6).
pub const RECORD_FIXED_SIZE_V1_IPV4: usize = 91;

/// Record format version, chosen by topic length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MagicVersion {
    /// 1-byte topic length, magic [`MAGIC_CODE_V1`].
    V1,
    /// 2-byte topic length, magic [`MAGIC_CODE_V2`].
    V2,
}

impl MagicVersion {
    /// The magic code.
    #[must_use]
    pub const fn magic(self) -> u32 {
        match self {
            Self::V1 => MAGIC_CODE_V1,
            Self::V2 => MAGIC_CODE_V2,
        }
    }

    /// The version with this magic, if any.
    #[must_use]
    pub const fn from_magic(magic: u32) -> Option<Self> {
        match magic {
            MAGIC_CODE_V1 => Some(Self::V1),
            MAGIC_CODE_V2 => Some(Self::V2),
            _ => None,
        }
    }

    /// The version Java (and we) write for a topic of `topic_len` bytes.
    #[must_use]
    pub const fn for_topic_len(topic_len: usize) -> Self {
        if topic_len > TOPIC_V1_SIZE_MAX {
            Self::V2
        } else {
            Self::V1
        }
    }

    /// Bytes of the `TOPIC_LEN` field.
    #[must_use]
    pub const fn topic_len_size(self) -> usize {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
        }
    }
}

/// Field offsets of a record with a given version and host kinds. The offsets up to
/// BORNHOST are the `*_OFFSET` constants; the rest shift by 12 bytes per IPv6 host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLayout {
    /// Format version.
    pub version: MagicVersion,
    /// Bytes of BORNHOST (8 or 20).
    pub born_host_size: usize,
    /// Bytes of STOREHOSTADDRESS (8 or 20).
    pub store_host_size: usize,
}

impl RecordLayout {
    /// The layout for `version` with host kinds from `sys_flag`'s bits 4 and 5.
    #[must_use]
    pub const fn new(version: MagicVersion, sys_flag: i32) -> Self {
        Self {
            version,
            born_host_size: host_size(sysflag::has(sys_flag, BORNHOST_V6)),
            store_host_size: host_size(sysflag::has(sys_flag, STOREHOSTADDRESS_V6)),
        }
    }

    /// Reads the layout of the encoded record at the front of `record` (its magic and SYSFLAG).
    ///
    /// # Errors
    /// [`CodecError::Truncated`] if `record` is shorter than the fixed prefix up to SYSFLAG,
    /// [`CodecError::Magic`] for an unknown magic.
    pub fn of_record(record: &[u8]) -> Result<Self, CodecError> {
        let mut reader = Reader::new(record, 0);
        reader.take(MAGIC_CODE_OFFSET, "TOTALSIZE")?;
        let magic = reader.u32("MAGICCODE")?;
        let version = MagicVersion::from_magic(magic).ok_or(CodecError::Magic {
            magic,
            offset: MAGIC_CODE_OFFSET,
        })?;
        reader.take(SYS_FLAG_OFFSET - reader.position(), "record prefix")?;
        let sys_flag = reader.i32("SYSFLAG")?;
        Ok(Self::new(version, sys_flag))
    }

    /// Offset of STORETIMESTAMP.
    #[must_use]
    pub const fn store_timestamp_offset(&self) -> usize {
        BORN_HOST_OFFSET + self.born_host_size
    }

    /// Offset of STOREHOSTADDRESS.
    #[must_use]
    pub const fn store_host_offset(&self) -> usize {
        self.store_timestamp_offset() + 8
    }

    /// Offset of RECONSUMETIMES.
    #[must_use]
    pub const fn reconsume_times_offset(&self) -> usize {
        self.store_host_offset() + self.store_host_size
    }

    /// Offset of `PREPARED_TX_OFFSET`.
    #[must_use]
    pub const fn prepared_transaction_offset_offset(&self) -> usize {
        self.reconsume_times_offset() + 4
    }

    /// Offset of `BODY_LEN`.
    #[must_use]
    pub const fn body_len_offset(&self) -> usize {
        self.prepared_transaction_offset_offset() + 8
    }

    /// Offset of BODY.
    #[must_use]
    pub const fn body_offset(&self) -> usize {
        self.body_len_offset() + 4
    }

    /// Record size with an empty body, topic and properties.
    #[must_use]
    pub const fn fixed_size(&self) -> usize {
        self.body_offset() + self.version.topic_len_size() + PROPERTIES_LEN_SIZE
    }
}

// Layout drift would corrupt every record a Java client reads: pin it to PROTOCOL.md §6.6.
const _: () = {
    let v4 = RecordLayout::new(MagicVersion::V1, 0);
    assert!(v4.store_timestamp_offset() == 56);
    assert!(v4.store_host_offset() == 64);
    assert!(v4.reconsume_times_offset() == 72);
    assert!(v4.prepared_transaction_offset_offset() == 76);
    assert!(v4.body_len_offset() == 84);
    assert!(v4.body_offset() == 88);
    assert!(v4.fixed_size() == RECORD_FIXED_SIZE_V1_IPV4);
    assert!(RecordLayout::new(MagicVersion::V2, 0).fixed_size() == 92);
    let v6 = RecordLayout::new(MagicVersion::V1, BORNHOST_V6 | STOREHOSTADDRESS_V6);
    assert!(v6.fixed_size() == RECORD_FIXED_SIZE_V1_IPV4 + 2 * (HOST_V6_SIZE - HOST_V4_SIZE));
    assert!(BORN_HOST_OFFSET == BORN_TIMESTAMP_OFFSET + 8);
    assert!(BORN_TIMESTAMP_OFFSET == SYS_FLAG_OFFSET + 4);
    assert!(SYS_FLAG_OFFSET == PHYSICAL_OFFSET_OFFSET + 8);
    assert!(PHYSICAL_OFFSET_OFFSET == QUEUE_OFFSET_OFFSET + 8);
    assert!(QUEUE_OFFSET_OFFSET == FLAG_OFFSET + 4);
    assert!(FLAG_OFFSET == QUEUE_ID_OFFSET + 4);
    assert!(QUEUE_ID_OFFSET == BODY_CRC_OFFSET + 4);
    assert!(BODY_CRC_OFFSET == MAGIC_CODE_OFFSET + 4);
    assert!(MAGIC_CODE_OFFSET == TOTAL_SIZE_OFFSET + 4);
    assert!(TOPIC_V1_SIZE_MAX == i8::MAX as usize);
    assert!(PROPERTIES_SIZE_MAX == i16::MAX as usize);
};

/// Bytes of a host field of the given kind.
const fn host_size(v6: bool) -> usize {
    if v6 {
        HOST_V6_SIZE
    } else {
        HOST_V4_SIZE
    }
}

/// Writes QUEUEOFFSET and PHYSICALOFFSET into an encoded record, as the CommitLog writer does
/// once it knows where the record lands.
///
/// # Errors
/// [`CodecError::Truncated`] if `record` is shorter than the fixed prefix,
/// [`CodecError::Magic`] if it does not start with a record magic. Nothing is written then.
pub fn patch_offsets(
    record: &mut [u8],
    queue_offset: i64,
    physical_offset: i64,
) -> Result<(), CodecError> {
    RecordLayout::of_record(record)?;
    record[QUEUE_OFFSET_OFFSET..QUEUE_OFFSET_OFFSET + 8]
        .copy_from_slice(&queue_offset.to_be_bytes());
    record[PHYSICAL_OFFSET_OFFSET..PHYSICAL_OFFSET_OFFSET + 8]
        .copy_from_slice(&physical_offset.to_be_bytes());
    Ok(())
}

/// Writes STORETIMESTAMP into an encoded record (its offset depends on the born-host kind).
///
/// # Errors
/// As [`patch_offsets`], and [`CodecError::Truncated`] if the record ends before the field.
pub fn patch_store_timestamp(record: &mut [u8], store_timestamp: i64) -> Result<(), CodecError> {
    let at = RecordLayout::of_record(record)?.store_timestamp_offset();
    let Some(field) = record.get_mut(at..at + 8) else {
        return Err(CodecError::Truncated {
            what: "STORETIMESTAMP",
            offset: at,
            need: 8,
            have: record.len().saturating_sub(at),
        });
    };
    field.copy_from_slice(&store_timestamp.to_be_bytes());
    Ok(())
}
