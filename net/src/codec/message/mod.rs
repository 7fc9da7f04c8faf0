//! Message formats (PROTOCOL.md §6): the properties string, sysFlag bits, the stored-message
//! record (pull, query, view and check-back bodies), the batch send body, offset msgIds,
//! `UNIQ_KEY` generation, tag hash codes and the body CRC.
//!
//! Sans-io like the rest of the codec: it never reads a clock, a socket or the environment
//! (callers pass `now_ms`, pid and seeds in), never logs, and never panics on input bytes.
//! Every length read from input is checked against the buffer (and a named limit) before use.
//!
//! Map: [`properties`] (§6.1; [`raw_properties`] reads a canonical string in place) and
//! [`keys`] (§6.2), [`sysflag`] (§6.3), [`record`],
//! [`record_writer`] and [`layout`] (§6.6), [`batch`] (§6.5), [`msg_id`] (§6.8), [`uniq_key`] (§6.9), [`tag`]
//! (§6.10), [`crc`] (§6.7).

pub mod batch;
pub mod crc;
mod hex;
pub mod keys;
pub mod layout;
pub mod msg_id;
pub mod properties;
pub mod raw_properties;
mod reader;
pub mod record;
pub mod record_writer;
pub mod sysflag;
pub mod tag;
pub mod uniq_key;

pub use batch::{
    decode_batch, decode_batch_raw, encode_batch, BatchEntry, BatchLimits, RawBatchEntry,
};
pub use crc::body_crc;
pub use layout::{patch_offsets, patch_store_timestamp, MagicVersion, RecordLayout};
pub use properties::Properties;
pub use raw_properties::RawProperties;
pub use record::{decode_all, CrcCheck, MessageRecord, RecordIter};
pub use record_writer::RecordParts;
pub use tag::{tag_hash, tags_code_of};
pub use uniq_key::UniqKeyGenerator;
