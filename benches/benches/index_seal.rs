//! Index sealing micro-benchmark: `rmq_storage::index::sealed::encode_file` for a full active
//! table of the default size (2^18 entries), keyed as a broker keys its records (one
//! `UNIQ_KEY` per record, `topic#key` hashed), as it runs on the appending shard (and on a
//! catching-up slave) each time a table fills. Throughput is per entry.
//! Run: `cargo bench -p rmq-bench --bench index_seal`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rmq_storage::index::active::{ActiveTable, IndexEntry};
use rmq_storage::index::key::key_hash;
use rmq_storage::index::sealed::{encode_file, header_for};
use rmq_storage::index::INDEX_ACTIVE_ENTRIES_DEFAULT;

fn full_table() -> ActiveTable {
    let mut table = ActiveTable::new(INDEX_ACTIVE_ENTRIES_DEFAULT, 0);
    for i in 0..INDEX_ACTIVE_ENTRIES_DEFAULT as u64 {
        table.insert(IndexEntry {
            key_hash: key_hash("BenchTopic", &format!("7F0000010001{i:020X}")),
            phys_offset: i * 1360,
            store_timestamp: 1_765_000_000_000 + i64::try_from(i / 64).expect("small"),
        });
    }
    table
}

fn seal(c: &mut Criterion) {
    let table = full_table();
    let size = usize::try_from(header_for(&table).file_size()).expect("fits");
    let mut group = c.benchmark_group("index_seal");
    group.throughput(Throughput::Elements(INDEX_ACTIVE_ENTRIES_DEFAULT as u64));
    group.sample_size(20);
    group.bench_function("encode_file_2^18", |b| {
        b.iter_batched_ref(
            || vec![0u8; size],
            |out| black_box(encode_file(black_box(&table), out)),
            criterion::BatchSize::LargeInput,
        );
    });
    group.finish();
}

criterion_group!(benches, seal);
criterion_main!(benches);
