//! Compressed produce from an old (kcat, librdkafka 2.0.2) and a current (confluent-kafka) client:
//! the batches are really stored compressed with the codec asked for (librdkafka silently
//! sends uncompressed batches to a broker whose advertised Produce minimum version is above 0)
//! and read back intact.

use std::process::Command;
use std::time::Duration;

use riffle_protocol::record_batch::{Compression, RecordBatchView};
use riffle_tests::{
    assert_acked_readable, kafka, kcat_bin, python_ok, run_ok, scratch_dir, Broker, Unacked,
};

const MESSAGES: usize = 3000;

fn assert_stored_compressed(addr: &str, topic: &str, codec: Compression, records: usize) {
    let stored = kafka::fetch_all_batches(addr, topic, 0);
    assert!(!stored.is_empty(), "{topic}: no batch fetched");
    let mut count = 0usize;
    for bytes in &stored {
        let batch = RecordBatchView::parse(bytes).expect("a fetched batch parses");
        assert_eq!(
            batch.attributes().compression(),
            codec,
            "{topic}: batch at offset {} is stored with {:?}, the producer asked for {codec:?}",
            batch.base_offset(),
            batch.attributes().compression()
        );
        count += usize::try_from(batch.record_count()).expect("record count >= 0");
    }
    assert_eq!(count, records, "{topic}: records in the stored batches");
}

fn kcat_round_trip(name: &str, codec: Compression) {
    let broker = Broker::start();
    let addr = broker.addr();
    let topic = format!("kcat-{name}");
    kafka::create_topic(&addr, &topic, 1);
    let values: Vec<String> = (0..MESSAGES)
        .map(|i| format!("{name} message {i:05} {}", "compressible ".repeat(8)))
        .collect();
    run_ok(
        Command::new(kcat_bin())
            .args(["-P", "-b", &addr, "-t", &topic, "-p", "0", "-z", name])
            .args(["-X", "acks=all", "-X", "linger.ms=20"]),
        Some(format!("{}\n", values.join("\n")).into_bytes()),
        Duration::from_secs(60),
    );
    assert_stored_compressed(&addr, &topic, codec, MESSAGES);
    let out = run_ok(
        Command::new(kcat_bin())
            .args([
                "-C",
                "-b",
                &addr,
                "-t",
                &topic,
                "-o",
                "beginning",
                "-e",
                "-q",
            ])
            .args(["-f", "%s\\n"]),
        None,
        Duration::from_secs(60),
    );
    let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(got == values, "{topic}: kcat read back other values");
}

fn confluent_round_trip(name: &str, codec: Compression) {
    let broker = Broker::start();
    let addr = broker.addr();
    let scratch = scratch_dir("riffle-compression-");
    let topic = format!("confluent-{name}");
    kafka::create_topic(&addr, &topic, 1);
    let acked = scratch.path().join("acked.txt");
    let acked = acked.to_str().expect("UTF-8 path");
    python_ok(
        "confluent_produce.py",
        &[
            &addr,
            &topic,
            "1",
            &MESSAGES.to_string(),
            acked,
            &format!("--compression={name}"),
        ],
        Duration::from_secs(120),
    );
    assert_stored_compressed(&addr, &topic, codec, MESSAGES);
    assert_acked_readable(&addr, &topic, "1", acked, Unacked::None);
}

#[test]
fn kcat_gzip_batches_are_stored_gzip_compressed_and_read_back() {
    kcat_round_trip("gzip", Compression::Gzip);
}

#[test]
fn kcat_snappy_batches_are_stored_snappy_compressed_and_read_back() {
    kcat_round_trip("snappy", Compression::Snappy);
}

#[test]
fn kcat_lz4_batches_are_stored_lz4_compressed_and_read_back() {
    kcat_round_trip("lz4", Compression::Lz4);
}

#[test]
fn kcat_zstd_batches_are_stored_zstd_compressed_and_read_back() {
    kcat_round_trip("zstd", Compression::Zstd);
}

#[test]
fn confluent_gzip_batches_are_stored_gzip_compressed_and_read_back() {
    confluent_round_trip("gzip", Compression::Gzip);
}

#[test]
fn confluent_snappy_batches_are_stored_snappy_compressed_and_read_back() {
    confluent_round_trip("snappy", Compression::Snappy);
}

#[test]
fn confluent_lz4_batches_are_stored_lz4_compressed_and_read_back() {
    confluent_round_trip("lz4", Compression::Lz4);
}

#[test]
fn confluent_zstd_batches_are_stored_zstd_compressed_and_read_back() {
    confluent_round_trip("zstd", Compression::Zstd);
}
