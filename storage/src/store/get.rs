//! The read path of the store: pulls by queue offset (RocketMQ `GetMessageStatus` and
//! `nextBeginOffset`, PROTOCOL.md §4.4) with tag filtering on the consume-queue tag hash, and
//! queries by key through the index with every candidate verified against its record.
//!
//! Status -> pull response code (the broker's mapping, for reference): `Found` -> SUCCESS;
//! `NoMatchedMessage`, `MessageWasRemoving` -> PULL_RETRY_IMMEDIATELY; `NoMatchedLogicQueue`,
//! `NoMessageInQueue` -> PULL_NOT_FOUND if the request offset is 0, else PULL_OFFSET_MOVED;
//! `OffsetOverflowOne`, `OffsetFoundNull` -> PULL_NOT_FOUND; `OffsetOverflowBadly`,
//! `OffsetTooSmall` -> PULL_OFFSET_MOVED.
//!
//! Must never: scan more than [`GET_SCAN_ENTRIES_MAX`] entries per pull, return a record whose
//! topic, queue or queue offset differs from its consume-queue entry, or return a key-query hit
//! whose record does not carry the key.

use crate::commitlog::StoredRecord;
use crate::consume_queue::ops::EntryRead;
use crate::error::{Result, StorageError};
use crate::index::key::split_keys;

use crate::limits::{FILTER_READ_BATCH_RECORDS, FILTER_SCAN_BYTES_MAX};

use super::{validate_queue_id, Store};

/// Most consume-queue entries one pull scans when a filter skips entries (Java scans
/// `maxFilterMessageCount` = 16000 bytes of 20-byte units = 800 entries), unless the request
/// asks for more messages than that.
pub const GET_SCAN_ENTRIES_MAX: u64 = 800;

/// Which messages a pull returns, by consume-queue tag hash, or by the record itself.
#[derive(Debug, Clone, Copy)]
pub enum TagFilter<'a> {
    /// Every message (`*` or an empty subscription).
    All,
    /// Messages whose tag hash is in the set (the subscription's `codeSet`).
    Codes(&'a [i64]),
    /// Messages whose stored payload the filter accepts (SQL92 on the properties): every
    /// entry's record is read, in batches of [`FILTER_READ_BATCH_RECORDS`], and at most
    /// [`FILTER_SCAN_BYTES_MAX`] record bytes per pull.
    Records(&'a dyn RecordFilter),
}

/// A filter that needs the record (the consume queue holds only the tag hash).
pub trait RecordFilter: std::fmt::Debug {
    /// Whether the message whose stored payload is `payload` is returned. Must not panic on
    /// any bytes.
    fn accepts(&self, payload: &[u8]) -> bool;
}

impl TagFilter<'_> {
    fn matches(&self, tags_code: i64) -> bool {
        match self {
            TagFilter::All | TagFilter::Records(_) => true,
            TagFilter::Codes(codes) => codes.contains(&tags_code),
        }
    }
}

/// A pull request.
#[derive(Debug, Clone, Copy)]
pub struct GetRequest<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Queue id.
    pub queue_id: i32,
    /// Queue offset to read from.
    pub queue_offset: u64,
    /// Most messages to return (at least 1).
    pub max_count: u32,
    /// Most record bytes to return (the first message is returned even if larger).
    pub max_bytes: u64,
    /// Tag filter.
    pub filter: TagFilter<'a>,
}

/// Java `GetMessageStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetStatus {
    /// At least one message returned.
    Found,
    /// Entries were scanned but none matched the filter.
    NoMatchedMessage,
    /// Entries were scanned but their records are gone (CommitLog retention).
    MessageWasRemoving,
    /// The entry's consume-queue file is missing; `next_begin_offset` is the next file.
    OffsetFoundNull,
    /// Offset == max offset: caught up.
    OffsetOverflowOne,
    /// Offset > max offset.
    OffsetOverflowBadly,
    /// Offset < min offset.
    OffsetTooSmall,
    /// The queue exists but has never held a message (max offset 0).
    NoMessageInQueue,
    /// The queue is unknown to this store.
    NoMatchedLogicQueue,
}

/// Result of a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetResult {
    /// Status.
    pub status: GetStatus,
    /// Where the consumer pulls next.
    pub next_begin_offset: u64,
    /// Queue min offset.
    pub min_offset: u64,
    /// Queue max offset.
    pub max_offset: u64,
    /// Records found, in queue-offset order (each carries its queue offset).
    pub records: Vec<StoredRecord>,
    /// CommitLog offset of the last consume-queue entry the scan read, matched or filtered
    /// out (Java's `maxPhyOffsetPulling`): how far behind the log's end the consumer reads.
    /// `None` when no entry was read.
    pub last_scanned_phys_offset: Option<u64>,
}

/// Answer of a key query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResult {
    /// Matching records, newest first.
    pub records: Vec<StoredRecord>,
    /// Store timestamp of the last record dispatched into the index (reply header
    /// `indexLastUpdateTimestamp`).
    pub index_last_update_timestamp: i64,
    /// CommitLog offset of that record (`indexLastUpdatePhyoffset`).
    pub index_last_update_phys_offset: u64,
}

/// Running state of one pull scan.
struct Scan {
    status: GetStatus,
    next: u64,
    bytes: u64,
    records: Vec<StoredRecord>,
    last_phys_offset: Option<u64>,
}

impl Store {
    /// Pulls messages from a queue, following PROTOCOL.md §4.4's status and `nextBeginOffset`
    /// table.
    ///
    /// # Errors
    /// I/O errors; [`StorageError::Corrupt`] when an entry or its record fails validation.
    pub async fn get_messages(&self, request: &GetRequest<'_>) -> Result<GetResult> {
        validate_queue_id(request.queue_id)?;
        let offset = request.queue_offset;
        let Some((min_offset, max_offset)) = self.offsets(request.topic, request.queue_id) else {
            return Ok(empty(GetStatus::NoMatchedLogicQueue, 0, 0, 0));
        };
        let (status, next) = if max_offset == 0 {
            (GetStatus::NoMessageInQueue, 0)
        } else if offset < min_offset {
            (GetStatus::OffsetTooSmall, min_offset)
        } else if offset == max_offset {
            (GetStatus::OffsetOverflowOne, offset)
        } else if offset > max_offset {
            (GetStatus::OffsetOverflowBadly, max_offset)
        } else {
            let scan = match request.filter {
                TagFilter::Records(filter) => {
                    self.scan_records(request, filter, max_offset).await?
                }
                _ => self.scan(request, max_offset).await?,
            };
            let (min_offset, max_offset) = self
                .offsets(request.topic, request.queue_id)
                .unwrap_or((min_offset, max_offset));
            return Ok(GetResult {
                status: scan.status,
                next_begin_offset: scan.next,
                min_offset,
                max_offset,
                records: scan.records,
                last_scanned_phys_offset: scan.last_phys_offset,
            });
        };
        Ok(empty(status, next, min_offset, max_offset))
    }

    async fn scan(&self, request: &GetRequest<'_>, max_offset: u64) -> Result<Scan> {
        let max_count = request.max_count.max(1) as usize;
        let scan_end =
            max_offset.min(request.queue_offset + GET_SCAN_ENTRIES_MAX.max(max_count as u64));
        let mut scan = Scan {
            status: GetStatus::NoMatchedMessage,
            next: request.queue_offset,
            bytes: 0,
            records: Vec::new(),
            last_phys_offset: None,
        };
        // First the consume-queue entries (which records, within count and bytes), then the
        // records in one go, so a cold pull costs a few large reads instead of one per record:
        // the picked entries' queue offsets, and their records' (offset, size) in the log.
        let mut picked: Vec<u64> = Vec::new();
        let mut wanted: Vec<(u64, u32)> = Vec::new();
        let mut picked_bytes = 0u64;
        let mut offset = request.queue_offset;
        let mut missing_file = None;
        while offset < scan_end {
            let entry = match self
                .cqs
                .read_entry(request.topic, request.queue_id, offset)
                .await?
            {
                EntryRead::Found(entry) => entry,
                EntryRead::FileMissing { next_file_first } => {
                    missing_file = Some(next_file_first);
                    break;
                }
                // Retention raised the min offset under the scan: stop here.
                EntryRead::OutOfRange => break,
            };
            scan.last_phys_offset = Some(entry.phys_offset);
            let full = !picked.is_empty()
                && (picked.len() >= max_count
                    || picked_bytes + u64::from(entry.size) > request.max_bytes);
            if full {
                break;
            }
            offset += 1;
            scan.next = offset;
            if !request.filter.matches(entry.tags_code) {
                continue;
            }
            picked_bytes += u64::from(entry.size);
            picked.push(offset - 1);
            wanted.push((entry.phys_offset, entry.size));
        }
        if picked.is_empty() {
            if let Some(next_file_first) = missing_file {
                scan.status = GetStatus::OffsetFoundNull;
                scan.next = next_file_first;
            }
            return Ok(scan);
        }
        let records = self.log.read_many(&wanted).await;
        for (queue_offset, record) in picked.iter().zip(records) {
            let record = match record {
                Ok(record) => record,
                Err(StorageError::OffsetOutOfRange { .. }) => {
                    if scan.records.is_empty() {
                        scan.status = GetStatus::MessageWasRemoving;
                    }
                    continue;
                }
                Err(error) => return Err(error),
            };
            check_record(&record, request, *queue_offset)?;
            scan.bytes += u64::from(record.size);
            scan.records.push(record);
            scan.status = GetStatus::Found;
        }
        Ok(scan)
    }

    /// [`Store::scan`] for a filter that needs each record: reads the entries' records in
    /// batches and keeps those the filter accepts, until `max_count` / `max_bytes` are reached
    /// or the scan bounds ([`GET_SCAN_ENTRIES_MAX`], [`FILTER_SCAN_BYTES_MAX`]) end it.
    /// `next` is past every entry examined, except that a matching record left out for lack of
    /// room is where the next pull starts.
    async fn scan_records(
        &self,
        request: &GetRequest<'_>,
        filter: &dyn RecordFilter,
        max_offset: u64,
    ) -> Result<Scan> {
        let max_count = request.max_count.max(1) as usize;
        let scan_end =
            max_offset.min(request.queue_offset + GET_SCAN_ENTRIES_MAX.max(max_count as u64));
        let mut scan = Scan {
            status: GetStatus::NoMatchedMessage,
            next: request.queue_offset,
            bytes: 0,
            records: Vec::new(),
            last_phys_offset: None,
        };
        let mut offset = request.queue_offset;
        let mut scanned_bytes = 0u64;
        while offset < scan_end
            && scanned_bytes < FILTER_SCAN_BYTES_MAX
            && scan.records.len() < max_count
        {
            let mut picked: Vec<u64> = Vec::new();
            let mut wanted: Vec<(u64, u32)> = Vec::new();
            let mut picked_bytes = 0u64;
            let mut ended = false;
            let mut missing_file = None;
            // About as many records as should still yield the matches wanted, at the match
            // rate seen so far in this pull (first batch: as many as could be returned), so a
            // batch that matches entirely is not read twice (here and by the next pull) and a
            // selective filter reads in large batches.
            let still = (max_count - scan.records.len()) as u64;
            let examined = offset - request.queue_offset;
            let matched = scan.records.len().max(1) as u64;
            let estimate = if examined == 0 {
                still
            } else {
                still * examined / matched
            };
            let batch = usize::try_from(estimate)
                .unwrap_or(usize::MAX)
                .clamp(1, FILTER_READ_BATCH_RECORDS);
            while offset < scan_end
                && picked.len() < batch
                && (picked.is_empty() || picked_bytes < request.max_bytes)
            {
                let entry = match self
                    .cqs
                    .read_entry(request.topic, request.queue_id, offset)
                    .await?
                {
                    EntryRead::Found(entry) => entry,
                    EntryRead::FileMissing { next_file_first } => {
                        missing_file = Some(next_file_first);
                        ended = true;
                        break;
                    }
                    EntryRead::OutOfRange => {
                        ended = true;
                        break;
                    }
                };
                scan.last_phys_offset = Some(entry.phys_offset);
                picked.push(offset);
                wanted.push((entry.phys_offset, entry.size));
                picked_bytes += u64::from(entry.size);
                offset += 1;
            }
            if picked.is_empty() {
                if let (Some(next_file_first), true) = (missing_file, scan.records.is_empty()) {
                    scan.status = GetStatus::OffsetFoundNull;
                    scan.next = next_file_first;
                }
                break;
            }
            scanned_bytes += picked_bytes;
            let records = self.log.read_many(&wanted).await;
            for (queue_offset, record) in picked.iter().zip(records) {
                let record = match record {
                    Ok(record) => record,
                    Err(StorageError::OffsetOutOfRange { .. }) => {
                        if scan.records.is_empty() {
                            scan.status = GetStatus::MessageWasRemoving;
                        }
                        scan.next = queue_offset + 1;
                        continue;
                    }
                    Err(error) => return Err(error),
                };
                check_record(&record, request, *queue_offset)?;
                if !filter.accepts(&record.payload) {
                    scan.next = queue_offset + 1;
                    continue;
                }
                let full = !scan.records.is_empty()
                    && (scan.records.len() >= max_count
                        || scan.bytes + u64::from(record.size) > request.max_bytes);
                if full {
                    // This match is the next pull's first message.
                    return Ok(scan);
                }
                scan.bytes += u64::from(record.size);
                scan.records.push(record);
                scan.status = GetStatus::Found;
                scan.next = queue_offset + 1;
            }
            if ended {
                break;
            }
        }
        Ok(scan)
    }

    /// Records indexed under `topic#key` with a store time in `[begin_ms, end_ms]`, newest
    /// first, at most `max_num`. Every candidate's record is read and kept only if its topic is
    /// `topic` and its keys contain `key`.
    ///
    /// # Errors
    /// I/O errors; [`StorageError::Corrupt`] from the index or the CommitLog.
    pub async fn query_by_key(
        &self,
        topic: &str,
        key: &str,
        max_num: usize,
        begin_ms: i64,
        end_ms: i64,
    ) -> Result<QueryResult> {
        let (index_last_update_timestamp, index_last_update_phys_offset) = self.last_dispatch.get();
        let mut records = Vec::new();
        if max_num > 0 && !key.is_empty() {
            // A little slack: a hash collision costs one candidate.
            let candidates = self
                .index
                .query(topic, key, begin_ms, end_ms, max_num + 8)
                .await?;
            for phys_offset in candidates {
                if records.len() >= max_num {
                    break;
                }
                let record = match self.log.read(phys_offset, None).await {
                    Ok(record) => record,
                    Err(StorageError::OffsetOutOfRange { .. }) => continue,
                    Err(error) => return Err(error),
                };
                if record_has_key(&record, topic, key) {
                    records.push(record);
                }
            }
        }
        Ok(QueryResult {
            records,
            index_last_update_timestamp,
            index_last_update_phys_offset,
        })
    }
}

/// Does `record` belong to `topic` and carry `key` among its keys? (The index stores hashes;
/// this drops hash collisions.)
fn record_has_key(record: &StoredRecord, topic: &str, key: &str) -> bool {
    let keys = std::str::from_utf8(&record.keys).unwrap_or("");
    &record.topic[..] == topic.as_bytes() && split_keys(keys).any(|candidate| candidate == key)
}

fn empty(status: GetStatus, next_begin_offset: u64, min_offset: u64, max_offset: u64) -> GetResult {
    GetResult {
        status,
        next_begin_offset,
        min_offset,
        max_offset,
        records: Vec::new(),
        last_scanned_phys_offset: None,
    }
}

/// Pair check between a consume-queue entry and the record it points at.
fn check_record(record: &StoredRecord, request: &GetRequest<'_>, queue_offset: u64) -> Result<()> {
    let matches = &record.topic[..] == request.topic.as_bytes()
        && record.queue_id == request.queue_id
        && u64::try_from(record.queue_offset) == Ok(queue_offset);
    if matches {
        return Ok(());
    }
    Err(StorageError::Corrupt {
        path: std::path::PathBuf::from(request.topic),
        offset: record.phys_offset,
        reason: format!(
            "consume queue {}/{} offset {queue_offset} points at a record of queue offset {}",
            request.topic, request.queue_id, record.queue_offset
        ),
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn record(topic: &'static str, keys: &'static str) -> StoredRecord {
        StoredRecord {
            phys_offset: 0,
            size: 128,
            generation: 1,
            sys_flag: 0,
            queue_id: 0,
            queue_offset: 0,
            tags_code: 0,
            store_timestamp_ms: 0,
            topic: Bytes::from_static(topic.as_bytes()),
            keys: Bytes::from_static(keys.as_bytes()),
            payload: Bytes::new(),
            raw: Bytes::new(),
        }
    }

    #[test]
    fn key_verification_drops_collisions() {
        assert!(record_has_key(&record("T", "a b"), "T", "b"));
        assert!(
            !record_has_key(&record("T", "a b"), "T", "c"),
            "another key with the same hash"
        );
        assert!(
            !record_has_key(&record("T", "ab"), "T", "a"),
            "keys match whole, not prefixes"
        );
        assert!(
            !record_has_key(&record("U", "a"), "T", "a"),
            "another topic"
        );
        assert!(!record_has_key(&record("T", ""), "T", ""));
    }

    #[test]
    fn tag_filter_matches_codes() {
        assert!(TagFilter::All.matches(5));
        assert!(TagFilter::Codes(&[1, 5]).matches(5));
        assert!(!TagFilter::Codes(&[1]).matches(5));
        assert!(!TagFilter::Codes(&[]).matches(0));
    }
}
