//! Running out of file descriptors while partitions open (issue 14, item 10): a partition that
//! cannot open its files is refused with KAFKA_STORAGE_ERROR, which clients retry, while the
//! broker stays up and the partitions already open keep taking writes; once descriptors are free
//! again, the refused partition opens on its next request. The broker starts under a low
//! RLIMIT_NOFILE (soft = hard, so its raise at start changes nothing).

use std::time::SystemTime;

use riffle_protocol::record_batch::{Compression, RecordBatchBuilder};
use riffle_protocol::{error_code, Bytes};
use riffle_tests::kafka::{self, Connection};
use riffle_tests::{Broker, BrokerOptions};

/// Descriptors the broker may hold: its rings, listener and a few connections fit, and a few
/// dozen partitions.
const OPEN_FILES_LIMIT: u64 = 160;
/// More partitions than the limit lets open.
const PARTITIONS: i32 = 150;
/// Connections closed once descriptors ran out, to give some back.
const SPARE_CONNECTIONS: usize = 16;

fn record() -> Bytes {
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis() as i64;
    let mut builder = RecordBatchBuilder::new(Compression::None, now_ms);
    builder.append(now_ms, None, Some(b"fd"), &[]);
    builder.finish()
}

/// Opens partitions of `spare` (acks=1) until one is refused; the partitions opened and the one
/// refused.
fn open_until_refused(conn: &mut Connection) -> (Vec<i32>, i32) {
    let mut opened = Vec::new();
    for p in 0..PARTITIONS {
        match kafka::produce(conn, "spare", p, record(), 1) {
            (code, _) if code == error_code::NONE => opened.push(p),
            (code, _) => {
                assert_eq!(code, error_code::KAFKA_STORAGE_ERROR, "partition {p}");
                assert!(!opened.is_empty());
                return (opened, p);
            }
        }
    }
    panic!("descriptors never ran out over {PARTITIONS} partitions");
}

fn start_broker() -> Broker {
    Broker::start_with(BrokerOptions {
        open_files_limit: Some((OPEN_FILES_LIMIT, OPEN_FILES_LIMIT)),
        config_toml: Some("log_preallocate_bytes = 1048576\n".to_string()),
        ..Default::default()
    })
}

#[test]
fn a_partition_that_cannot_open_its_files_is_refused_and_opens_once_descriptors_are_free() {
    let broker = start_broker();
    let addr = broker.addr();
    // Connections are opened first (accept needs a descriptor too); the spare ones are closed
    // later to give descriptors back.
    let mut conn = Connection::connect(&addr).expect("connect");
    let spare: Vec<Connection> = (0..SPARE_CONNECTIONS)
        .map(|_| Connection::connect(&addr).expect("connect"))
        .collect();
    kafka::create_topic(&addr, "spare", PARTITIONS);
    kafka::create_topic(&addr, "late", 1);
    let (_, refused) = open_until_refused(&mut conn);
    // A partition of another topic is refused alike (the client retries), the broker stays up.
    let (code, _) = kafka::produce(&mut conn, "late", 0, record(), 1);
    assert_eq!(code, error_code::KAFKA_STORAGE_ERROR);
    drop(spare);
    // Closed connections gave their descriptors back: the refused partition opens on a retry.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match kafka::produce(&mut conn, "late", 0, record(), 1) {
            (code, offset) if code == error_code::NONE => {
                assert_eq!(offset, 0);
                break;
            }
            (code, _) => assert_eq!(code, error_code::KAFKA_STORAGE_ERROR),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "late-0 still refused 10 s after descriptors were freed (spare-{refused} was refused)"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn partitions_already_open_keep_taking_durable_writes_when_descriptors_run_out() {
    let broker = start_broker();
    let addr = broker.addr();
    let mut conn = Connection::connect(&addr).expect("connect");
    kafka::create_topic(&addr, "spare", PARTITIONS);
    let (opened, _) = open_until_refused(&mut conn);
    for &p in opened.iter().rev().take(5) {
        let (code, offset) = kafka::produce(&mut conn, "spare", p, record(), -1);
        assert_eq!((code, offset), (error_code::NONE, 1), "partition {p}");
    }
}
