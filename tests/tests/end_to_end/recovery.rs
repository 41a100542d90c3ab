//! Crash recovery seen from a client: after kill -9, a torn last batch on disk (a bad CRC, or
//! half a batch written past the end) is cut off at start-up, the batches before it are served,
//! missing indexes are rebuilt, and appends continue from the recovered end.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use riffle_protocol::record_batch::{batches, Compression, RecordBatchBuilder};
use riffle_protocol::{error_code, Bytes};
use riffle_tests::kafka::{self, Connection};
use riffle_tests::Broker;

const BATCHES: i64 = 5;
const RECORDS: i64 = 10;

fn batch(first: i64) -> Bytes {
    let now_ms = 1_700_000_000_000;
    let mut builder = RecordBatchBuilder::new(Compression::None, now_ms);
    for i in first..first + RECORDS {
        builder.append(
            now_ms + i,
            None,
            Some(format!("recovery-{i}").as_bytes()),
            &[],
        );
    }
    builder.finish()
}

/// Starts a broker with BATCHES acknowledged (acks=all) batches in `topic`-0, then kill -9.
fn crashed_broker(topic: &str) -> Broker {
    let mut broker = Broker::start();
    kafka::create_topic(&broker.addr(), topic, 1);
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    for n in 0..BATCHES {
        assert_eq!(
            kafka::produce(&mut conn, topic, 0, batch(n * RECORDS), -1),
            (error_code::NONE, n * RECORDS)
        );
    }
    broker.kill9();
    broker
}

fn segment_path(broker: &Broker, topic: &str) -> PathBuf {
    let dir = broker.data_dir().join(format!("{topic}-0"));
    dir.join(format!("{:020}.log", 0))
}

/// Byte positions and lengths of the whole batches at the start of the segment.
fn stored_batches(path: &PathBuf) -> Vec<(usize, usize)> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
        .read_to_end(&mut bytes)
        .expect("read the segment");
    let mut out = Vec::new();
    let mut pos = 0;
    for b in batches(&bytes) {
        let Ok(b) = b else { break };
        if b.validate().is_err() {
            break;
        }
        out.push((pos, b.len()));
        pos += b.len();
    }
    out
}

fn write_at(path: &PathBuf, pos: u64, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open the segment for writing");
    f.seek(SeekFrom::Start(pos)).expect("seek");
    f.write_all(bytes).expect("write");
    f.sync_all().expect("sync");
}

fn remove_indexes(broker: &Broker, topic: &str) {
    let dir = broker.data_dir().join(format!("{topic}-0"));
    for ext in ["index", "timeindex"] {
        let _ = std::fs::remove_file(dir.join(format!("{:020}.{ext}", 0)));
    }
}

/// Every record from offset 0 to the end, as (offset, value).
fn read_all(addr: &str, topic: &str) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    for stored in kafka::fetch_all_batches(addr, topic, 0) {
        let view = riffle_protocol::record_batch::RecordBatchView::parse(&stored).expect("parse");
        view.validate().expect("a fetched batch is valid");
        for r in view.records().expect("uncompressed") {
            let r = r.expect("record");
            out.push((
                view.base_offset() + i64::from(r.offset_delta),
                String::from_utf8_lossy(r.value.expect("value")).into_owned(),
            ));
        }
    }
    out
}

fn expected(records: i64) -> Vec<(i64, String)> {
    (0..records).map(|i| (i, format!("recovery-{i}"))).collect()
}

#[test]
fn recovery_truncates_a_last_batch_with_a_bad_crc() {
    let topic = "recovery-bad-crc";
    let mut broker = crashed_broker(topic);
    let path = segment_path(&broker, topic);
    let stored = stored_batches(&path);
    assert_eq!(
        stored.len() as i64,
        BATCHES,
        "batches found in {}",
        path.display()
    );
    let (pos, len) = *stored.last().expect("a last batch");
    write_at(&path, (pos + len - 3) as u64, b"XYZ"); // inside the CRC-covered records
    remove_indexes(&broker, topic);
    broker.restart();

    let survivors = (BATCHES - 1) * RECORDS;
    assert_eq!(
        read_all(&broker.addr(), topic),
        expected(survivors),
        "the batches before the torn one are served, the torn one is gone"
    );
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    assert_eq!(
        kafka::produce(&mut conn, topic, 0, batch(survivors), -1),
        (error_code::NONE, survivors),
        "appends continue at the recovered end"
    );
    assert_eq!(read_all(&broker.addr(), topic), expected(BATCHES * RECORDS));
}

#[test]
fn recovery_ignores_half_a_batch_written_past_the_end() {
    let topic = "recovery-partial";
    let mut broker = crashed_broker(topic);
    let path = segment_path(&broker, topic);
    let stored = stored_batches(&path);
    assert_eq!(stored.len() as i64, BATCHES);
    let (pos, len) = *stored.last().expect("a last batch");
    // The first half of a further batch, as a crash in the middle of its write would leave it.
    let mut next = batch(BATCHES * RECORDS).to_vec();
    next[..8].copy_from_slice(&(BATCHES * RECORDS).to_be_bytes());
    write_at(&path, (pos + len) as u64, &next[..next.len() / 2]);
    remove_indexes(&broker, topic);
    broker.restart();

    assert_eq!(read_all(&broker.addr(), topic), expected(BATCHES * RECORDS));
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    assert_eq!(
        kafka::produce(&mut conn, topic, 0, batch(BATCHES * RECORDS), -1),
        (error_code::NONE, BATCHES * RECORDS)
    );
    assert_eq!(
        read_all(&broker.addr(), topic),
        expected((BATCHES + 1) * RECORDS)
    );
}
