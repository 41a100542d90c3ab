//! RecordBatch v2 on the produce path: CRC-32C throughput, `validate()` of a typical
//! 16 KiB batch of 100 records, iterating its records, building it (the load generator's
//! side), and decompressing it (with the produce-time check of its records).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use riffle_protocol::record_batch::{Compression, RecordBatchBuilder, RecordBatchView};

const RECORDS: usize = 100;
const VALUE_BYTES: usize = 146;
const T0: i64 = 1_700_000_000_000;

/// 100 records of a 10-byte key and a 146-byte value: a batch of about 16 KiB.
fn batch_16k(compression: Compression) -> bytes::Bytes {
    let value = [0x5au8; VALUE_BYTES];
    let mut b = RecordBatchBuilder::new(compression, T0).producer(4242, 0, 0);
    for i in 0..RECORDS {
        let key = format!("key-{i:06}");
        b.append(T0 + i as i64, Some(key.as_bytes()), Some(&value), &[]);
    }
    b.finish()
}

/// CRC-32C (the `crc32c` crate, SIMD) through `compute_crc()`: a batch whose CRC-covered
/// bytes (21..end) are exactly 1 MiB.
fn crc32c_1mib(c: &mut Criterion) {
    const COVERED: usize = 1 << 20;
    // 61-byte header, then one record: length (3 bytes), attributes, timestamp delta,
    // offset delta, null key, value length (3 bytes), header count.
    let value_len = COVERED - (61 - 21) - 3 - 4 - 3 - 1;
    let value: Vec<u8> = (0..value_len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761) as u8)
        .collect();
    let mut b = RecordBatchBuilder::new(Compression::None, T0);
    b.append(T0, None, Some(&value), &[]);
    let batch = b.finish();
    let view = RecordBatchView::parse(&batch).unwrap();
    assert_eq!(view.len() - 21, COVERED);
    let mut g = c.benchmark_group("crc32c");
    g.throughput(Throughput::Bytes(COVERED as u64));
    g.bench_function("1MiB", |b| b.iter(|| black_box(view).compute_crc()));
    g.finish();
}

fn record_batch_16k(c: &mut Criterion) {
    let batch = batch_16k(Compression::None);
    assert!(
        (16_000..=16_800).contains(&batch.len()),
        "batch is {} bytes",
        batch.len()
    );
    let mut g = c.benchmark_group("record_batch_16KiB_100_records");
    g.throughput(Throughput::Bytes(batch.len() as u64));
    g.bench_function("validate", |b| {
        b.iter(|| {
            let view = RecordBatchView::parse(black_box(&batch)).unwrap();
            view.validate().unwrap();
        })
    });
    g.bench_function("iterate_records", |b| {
        b.iter(|| {
            let view = RecordBatchView::parse(black_box(&batch)).unwrap();
            let mut value_bytes = 0;
            for record in view.records().unwrap() {
                value_bytes += record.unwrap().value.map_or(0, <[u8]>::len);
            }
            assert_eq!(value_bytes, RECORDS * VALUE_BYTES);
        })
    });
    g.bench_function("build_uncompressed", |b| {
        b.iter(|| black_box(batch_16k(Compression::None)))
    });
    g.finish();

    let mut g = c.benchmark_group("record_batch_16KiB_decompress");
    g.throughput(Throughput::Bytes(batch.len() as u64));
    for codec in [
        Compression::Lz4,
        Compression::Zstd,
        Compression::Snappy,
        Compression::Gzip,
    ] {
        let compressed = batch_16k(codec);
        g.bench_function(format!("{codec:?}"), |b| {
            b.iter(|| {
                let view = RecordBatchView::parse(black_box(&compressed)).unwrap();
                view.decompress(1 << 20).unwrap()
            })
        });
        // What the broker adds per compressed batch on produce (Kafka's LogValidator does it too),
        // with its bound for a batch this size.
        g.bench_function(format!("{codec:?}_validate_records"), |b| {
            b.iter(|| {
                let view = RecordBatchView::parse(black_box(&compressed)).unwrap();
                view.validate_compressed_records(8 << 20).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, crc32c_1mib, record_batch_16k);
criterion_main!(benches);
