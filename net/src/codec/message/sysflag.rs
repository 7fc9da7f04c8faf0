//! Message sysFlag bits (PROTOCOL.md §6.3, Java `MessageSysFlag`): the send header's
//! `sysFlag` / `f` and a stored record's SYSFLAG. Pure bit arithmetic on `i32`; must never
//! touch bits other than the ones a helper names.

use std::net::SocketAddr;

use super::super::error::CodecError;

/// Bit 0: the body is compressed.
pub const COMPRESSED: i32 = 0x001;
/// Bit 1: set by the broker when the topic is `MULTI_TAG`.
pub const MULTI_TAGS: i32 = 0x002;
/// Transaction type 0: not transactional.
pub const TRANSACTION_NOT_TYPE: i32 = 0x000;
/// Transaction type: half (prepared) message.
pub const TRANSACTION_PREPARED_TYPE: i32 = 0x004;
/// Transaction type: commit record.
pub const TRANSACTION_COMMIT_TYPE: i32 = 0x008;
/// Transaction type: rollback record.
pub const TRANSACTION_ROLLBACK_TYPE: i32 = 0x00C;
/// Bits 2-3: the transaction type.
pub const TRANSACTION_MASK: i32 = 0x00C;
/// Bit 4: the born host is IPv6 (16-byte address).
pub const BORNHOST_V6: i32 = 0x010;
/// Bit 5: the store host is IPv6.
pub const STOREHOSTADDRESS_V6: i32 = 0x020;
/// Bit 6: 5.x inner batch, needs unwrapping.
pub const NEED_UNWRAP: i32 = 0x040;
/// Bit 7: 5.x inner batch.
pub const INNER_BATCH: i32 = 0x080;
/// Bits 8-10: the compression type.
pub const COMPRESSION_TYPE_MASK: i32 = 0x700;
/// Shift of the compression type bits.
pub const COMPRESSION_TYPE_SHIFT: u32 = 8;

const _: () = assert!(TRANSACTION_MASK == TRANSACTION_ROLLBACK_TYPE);
const _: () = assert!(
    COMPRESSION_TYPE_MASK >> COMPRESSION_TYPE_SHIFT == 0x7,
    "compression type is a 3-bit field"
);

/// Whether every bit of `bits` is set in `flag`.
#[must_use]
pub const fn has(flag: i32, bits: i32) -> bool {
    flag & bits == bits
}

/// The transaction type of a sysFlag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionType {
    /// Not transactional (0x0).
    NotType,
    /// Half message (0x4).
    Prepared,
    /// Commit record (0x8).
    Commit,
    /// Rollback record (0xC).
    Rollback,
}

impl TransactionType {
    /// The type's bits, already in place.
    #[must_use]
    pub const fn bits(self) -> i32 {
        match self {
            Self::NotType => TRANSACTION_NOT_TYPE,
            Self::Prepared => TRANSACTION_PREPARED_TYPE,
            Self::Commit => TRANSACTION_COMMIT_TYPE,
            Self::Rollback => TRANSACTION_ROLLBACK_TYPE,
        }
    }
}

/// The transaction type bits of `flag` (Java `getTransactionValue`).
#[must_use]
pub const fn transaction_value(flag: i32) -> i32 {
    flag & TRANSACTION_MASK
}

/// The transaction type of `flag`. Every bit pattern maps to one of the four types.
#[must_use]
pub const fn transaction_type(flag: i32) -> TransactionType {
    match transaction_value(flag) {
        TRANSACTION_PREPARED_TYPE => TransactionType::Prepared,
        TRANSACTION_COMMIT_TYPE => TransactionType::Commit,
        TRANSACTION_ROLLBACK_TYPE => TransactionType::Rollback,
        _ => TransactionType::NotType,
    }
}

/// `flag` with its transaction bits replaced (Java `resetTransactionValue`).
#[must_use]
pub const fn with_transaction_type(flag: i32, kind: TransactionType) -> i32 {
    (flag & !TRANSACTION_MASK) | kind.bits()
}

/// `flag` with `BORNHOST_V6` and `STOREHOSTADDRESS_V6` set from the address kinds, as the
/// broker does from the real socket addresses.
#[must_use]
pub const fn with_host_kinds(flag: i32, born_host: &SocketAddr, store_host: &SocketAddr) -> i32 {
    let mut out = flag & !(BORNHOST_V6 | STOREHOSTADDRESS_V6);
    if born_host.is_ipv6() {
        out |= BORNHOST_V6;
    }
    if store_host.is_ipv6() {
        out |= STOREHOSTADDRESS_V6;
    }
    out
}

/// A body compression algorithm (Java `CompressionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionType {
    /// Type 1, `0x100`.
    Lz4,
    /// Type 2, `0x200`.
    Zstd,
    /// Type 3, `0x300`; also what COMPRESSED with type 0 means (older clients).
    Zlib,
}

impl CompressionType {
    /// The type's bits, already shifted into place.
    #[must_use]
    pub const fn bits(self) -> i32 {
        let value = match self {
            Self::Lz4 => 1,
            Self::Zstd => 2,
            Self::Zlib => 3,
        };
        value << COMPRESSION_TYPE_SHIFT
    }
}

/// The compression of a body with sysFlag `flag`: `None` if COMPRESSED is clear, ZLIB if it is
/// set with type 0 (older clients).
///
/// # Errors
/// [`CodecError::InvalidField`] (`sysFlag`) for type values 4..=7, which Java refuses too.
pub fn compression(flag: i32) -> Result<Option<CompressionType>, CodecError> {
    if !has(flag, COMPRESSED) {
        return Ok(None);
    }
    match (flag & COMPRESSION_TYPE_MASK) >> COMPRESSION_TYPE_SHIFT {
        0 | 3 => Ok(Some(CompressionType::Zlib)),
        1 => Ok(Some(CompressionType::Lz4)),
        2 => Ok(Some(CompressionType::Zstd)),
        _ => Err(CodecError::InvalidField {
            field: "sysFlag",
            value: format!("{flag:#x} (unknown compression type)"),
        }),
    }
}

/// `flag` with COMPRESSED and the type bits set for `compression`, or both cleared for `None`.
#[must_use]
pub const fn with_compression(flag: i32, compression: Option<CompressionType>) -> i32 {
    let cleared = flag & !(COMPRESSED | COMPRESSION_TYPE_MASK);
    match compression {
        Some(kind) => cleared | COMPRESSED | kind.bits(),
        None => cleared,
    }
}
