//! The key index on a real disk: active table + sealed files, time range and limit, sealing when
//! the active table is full (memory bound), reopen, recovery trimming, retention.

use std::path::Path;

use rmq_storage::file::{scratch_dir_on_real_disk, Disk};
use rmq_storage::index::key::key_hash;
use rmq_storage::index::{Index, IndexConfig};

const CAP: usize = 64;

fn run<F: std::future::Future>(future: F) -> F::Output {
    compio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(future)
}

fn config(root: &Path) -> IndexConfig {
    let mut config = IndexConfig::new(root.to_path_buf());
    config.active_entries_max = CAP;
    config
}

/// Record i: at phys i * 100 (100 bytes), store time i ms, keys "k{i % 10}" and "u{i}".
async fn index_records(index: &Index, range: std::ops::Range<u64>) {
    for i in range {
        let keys = [format!("k{}", i % 10), format!("u{i}")];
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        if index.needs_seal(keys.len()) {
            index.seal().await.expect("seal");
        }
        let ts = i64::try_from(i).expect("small");
        let hashes: Vec<u64> = keys.iter().map(|key| key_hash("T", key)).collect();
        assert!(index.dispatch_hashed(&hashes, i * 100, i * 100 + 100, ts));
        assert!(
            index.active_len() <= CAP,
            "active table stays within its cap"
        );
    }
}

fn expected(key_mod: u64, range: std::ops::Range<u64>) -> Vec<u64> {
    range
        .rev()
        .filter(|i| i % 10 == key_mod)
        .map(|i| i * 100)
        .collect()
}

#[test]
fn query_active_and_sealed_with_range_and_limit() {
    let root = scratch_dir_on_real_disk("index-query").expect("scratch");
    run(async {
        let (index, resume) = Index::open(Disk::real(), config(&root), u64::MAX)
            .await
            .expect("open");
        assert_eq!(resume, None);
        index.start_at(0);
        index_records(&index, 0..500).await;
        assert!(
            index.sealed_files() >= 14,
            "500 records x 2 keys over a 64-entry table"
        );
        let all = index
            .query("T", "k3", i64::MIN, i64::MAX, 1000)
            .await
            .expect("query");
        assert_eq!(
            all,
            expected(3, 0..500),
            "newest first across active and sealed files"
        );
        let ranged = index.query("T", "k3", 100, 250, 1000).await.expect("query");
        assert_eq!(ranged, expected(3, 100..251));
        let limited = index
            .query("T", "k3", i64::MIN, i64::MAX, 7)
            .await
            .expect("query");
        assert_eq!(limited, expected(3, 0..500)[..7]);
        assert_eq!(
            index.query("T", "u123", 0, 1000, 10).await.expect("query"),
            [12_300]
        );
        assert!(index
            .query("T", "u123", 124, 1000, 10)
            .await
            .expect("query")
            .is_empty());
        assert!(index
            .query("Other", "k3", 0, 1000, 10)
            .await
            .expect("query")
            .is_empty());
        assert!(index
            .query("T", "absent", 0, 1000, 10)
            .await
            .expect("query")
            .is_empty());
    });
}

#[test]
fn reopen_resumes_after_last_sealed_file_and_trims() {
    let root = scratch_dir_on_real_disk("index-reopen").expect("scratch");
    run(async {
        let (index, _) = Index::open(Disk::real(), config(&root), u64::MAX)
            .await
            .expect("open");
        index.start_at(0);
        index_records(&index, 0..200).await;
        let sealed = index.sealed_files();
        let durable = index.durable_phys();
        assert!(
            durable > 0 && durable < 20_000,
            "active entries are not durable yet"
        );
        drop(index); // crash: the active table is lost

        let (index, resume) = Index::open(Disk::real(), config(&root), u64::MAX)
            .await
            .expect("open");
        assert_eq!(resume, Some(durable));
        assert_eq!(index.sealed_files(), sealed);
        // Replay the records after the resume point, as the store does.
        let resume = resume.expect("sealed files exist");
        index.start_at(resume);
        index_records(&index, resume / 100..200).await;
        let all = index
            .query("T", "k4", i64::MIN, i64::MAX, 1000)
            .await
            .expect("query");
        assert_eq!(
            all,
            expected(4, 0..200),
            "no loss and no duplicates after replay"
        );
        index.seal().await.expect("seal at close");
        assert_eq!(index.durable_phys(), 20_000);
        drop(index);

        // The CommitLog came back shorter than some sealed files cover: they go.
        let (index, resume) = Index::open(Disk::real(), config(&root), 10_000)
            .await
            .expect("open");
        let resume = resume.expect("earlier files kept");
        assert!(resume <= 10_000);
        index.start_at(resume);
        let all = index
            .query("T", "k4", i64::MIN, i64::MAX, 1000)
            .await
            .expect("query");
        assert_eq!(all, expected(4, 0..resume / 100));
        drop(index);

        // A damaged file is removed with every later one.
        let mut names: Vec<_> = std::fs::read_dir(&root)
            .expect("list")
            .map(|entry| entry.expect("entry").path())
            .collect();
        names.sort();
        let victim = &names[2];
        let mut bytes = std::fs::read(victim).expect("read");
        bytes[30] ^= 1;
        std::fs::write(victim, &bytes).expect("write");
        let (index, _) = Index::open(Disk::real(), config(&root), u64::MAX)
            .await
            .expect("open");
        assert_eq!(index.sealed_files(), 2);
    });
}

#[test]
fn corrupt_entry_block_is_an_error_not_a_wrong_answer() {
    let root = scratch_dir_on_real_disk("index-corrupt").expect("scratch");
    run(async {
        let (index, _) = Index::open(Disk::real(), config(&root), u64::MAX)
            .await
            .expect("open");
        index.start_at(0);
        index_records(&index, 0..32).await;
        index.seal().await.expect("seal");
        drop(index);
        let file = std::fs::read_dir(&root)
            .expect("list")
            .next()
            .expect("one")
            .expect("entry")
            .path();
        let mut bytes = std::fs::read(&file).expect("read");
        let len = bytes.len();
        // Entries occupy the last block; flip a byte in every entry.
        for at in (len - 4096..len).step_by(32) {
            bytes[at + 9] ^= 1;
        }
        std::fs::write(&file, &bytes).expect("write");
        let (index, _) = Index::open(Disk::real(), config(&root), u64::MAX)
            .await
            .expect("open");
        assert!(index
            .query("T", "k1", i64::MIN, i64::MAX, 10)
            .await
            .is_err());
    });
}

#[test]
fn retention_drops_files_below_commitlog_min() {
    let root = scratch_dir_on_real_disk("index-retention").expect("scratch");
    run(async {
        let (index, _) = Index::open(Disk::real(), config(&root), u64::MAX)
            .await
            .expect("open");
        index.start_at(0);
        index_records(&index, 0..300).await;
        let before = index.sealed_files();
        let dropped = index.apply_commitlog_min(15_000).await.expect("retention");
        assert!(dropped > 0);
        assert_eq!(index.sealed_files(), before - dropped);
        let all = index
            .query("T", "k2", i64::MIN, i64::MAX, 1000)
            .await
            .expect("query");
        assert!(
            all.iter().all(|&phys| phys >= 15_000 - 3200),
            "only files near the min remain"
        );
        assert!(all.contains(&29_200), "newest entry kept");
        assert_eq!(
            std::fs::read_dir(&root).expect("list").count(),
            index.sealed_files()
        );
    });
}
