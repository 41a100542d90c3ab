//! Hostile input on raw connections while a good client keeps producing: each bad connection
//! is closed (or, for a bad CRC, answered with CORRUPT_MESSAGE) with a logged reason, and
//! nothing else is harmed: the good producer sees no error and the broker stays up.

use std::io::{ErrorKind, Read};
use std::net::Shutdown;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use rand::{Rng, RngCore, SeedableRng};
use riffle_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use riffle_protocol::messages::{MetadataRequest, ProduceRequest, ProduceResponse};
use riffle_protocol::record_batch::{Compression, RecordBatchBuilder};
use riffle_protocol::{error_code, Bytes, Records};
use riffle_tests::kafka::{self, Connection};
use riffle_tests::{python_bin, python_script, scratch_dir, Background, Broker, BrokerOptions};

const PRODUCE_VERSION: i16 = 7;
/// How long the broker may take to close a connection it should close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits until the broker closes the connection (EOF or reset), failing after CLOSE_TIMEOUT.
/// Returns whatever bytes the broker sent before closing.
fn expect_closed(conn: &mut Connection, what: &str) -> Vec<u8> {
    let stream = conn.stream();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("set the read timeout");
    let deadline = Instant::now() + CLOSE_TIMEOUT;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return received,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return received, // reset: closed too
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the broker did not close the connection within {CLOSE_TIMEOUT:?}"
        );
    }
}

fn produce_request(conn: &mut Connection, topic: &str, batch: Bytes) -> Vec<u8> {
    conn.encode(
        PRODUCE_VERSION,
        &ProduceRequest {
            transactional_id: None,
            acks: -1,
            timeout_ms: 10_000,
            topic_data: vec![TopicProduceData {
                topic_id: Default::default(),
                name: topic.to_string(),
                partition_data: vec![PartitionProduceData {
                    index: 0,
                    records: Some(Records::from_bytes(batch)),
                }],
            }],
        },
    )
}

fn batch(records: usize) -> Bytes {
    let now_ms = 1_700_000_000_000;
    let mut builder = RecordBatchBuilder::new(Compression::None, now_ms);
    for i in 0..records {
        let key = format!("hostile-key-{i}");
        let value = format!("hostile-value-{i}");
        builder.append(
            now_ms + i as i64,
            Some(key.as_bytes()),
            Some(value.as_bytes()),
            &[(b"h".as_slice(), Some(b"v".as_slice()))],
        );
    }
    builder.finish()
}

/// The partition's error code and base offset in a Produce response.
fn produce_answer(response: &ProduceResponse) -> (i16, i64) {
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[test]
fn hostile_connections_are_closed_without_harming_a_producing_client() {
    let broker = Broker::start_with(BrokerOptions {
        // Two shards: hostile connections and the good producer land on either.
        smp: 2,
        // Connection ends that are not protocol errors (EOF mid-frame) are logged at debug.
        log_level: "info,riffle::connection=debug".to_string(),
        ..Default::default()
    });
    let addr = broker.addr();
    let good_topic = "hostile-good";
    let crc_topic = "hostile-crc";
    kafka::create_topic(&addr, good_topic, 4);
    kafka::create_topic(&addr, crc_topic, 1);

    let scratch = scratch_dir("riffle-hostile-");
    let acked = scratch.path().join("acked.txt");
    let producer = Background::spawn(
        Command::new(python_bin())
            .arg("-u")
            .arg(python_script("confluent_produce.py"))
            .args([&addr, good_topic, "4", "0"])
            .arg(&acked),
    );
    // Let the good producer get going before the attacks start.
    thread::sleep(Duration::from_millis(700));

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_4242);

    // 1. Random bytes, some with a random size prefix, some with a plausible one.
    for round in 0..16 {
        let mut conn = Connection::connect(&addr).expect("connect");
        let len = rng.gen_range(1..16 * 1024);
        let mut junk = vec![0u8; len];
        rng.fill_bytes(&mut junk);
        if round % 2 == 1 && len > 4 {
            let size = (len - 4) as u32;
            junk[..4].copy_from_slice(&size.to_be_bytes());
        }
        conn.send_raw(&junk).expect("send random bytes");
        // A frame that claims more than we sent waits for the rest: end our side.
        conn.stream().shutdown(Shutdown::Write).expect("shutdown");
        expect_closed(&mut conn, &format!("random bytes #{round}"));
    }

    // 2. A frame claiming 2 GiB (0x7fffffff): refused from its size prefix alone.
    let mut conn = Connection::connect(&addr).expect("connect");
    conn.send_raw(&[0x7f, 0xff, 0xff, 0xff, 0, 18, 0, 3])
        .expect("send");
    expect_closed(&mut conn, "a 2 GiB frame");

    // 3. A frame claiming 100 MiB (the largest allowed), then the client goes away.
    let mut conn = Connection::connect(&addr).expect("connect");
    let mut claim = (100u32 * 1024 * 1024).to_be_bytes().to_vec();
    claim.extend_from_slice(&[0u8; 1000]);
    conn.send_raw(&claim).expect("send");
    drop(conn);
    // And one byte above the limit: closed by the broker.
    let mut conn = Connection::connect(&addr).expect("connect");
    conn.send_raw(&(100u32 * 1024 * 1024 + 1).to_be_bytes())
        .expect("send");
    expect_closed(&mut conn, "a frame of 100 MiB + 1 byte");

    // 4. Truncated requests: a valid header with half the body, (a) the size prefix claiming
    // the whole request and the client stopping, (b) the size prefix matching what is sent.
    let mut conn = Connection::connect(&addr).expect("connect");
    let whole = produce_request(&mut conn, good_topic, batch(20));
    let half = 4 + (whole.len() - 4) / 2;
    conn.send_raw(&whole[..half]).expect("send");
    conn.stream().shutdown(Shutdown::Write).expect("shutdown");
    expect_closed(&mut conn, "a truncated request (client gone)");
    let mut conn = Connection::connect(&addr).expect("connect");
    let whole = produce_request(&mut conn, good_topic, batch(20));
    let mut cut = whole[..half].to_vec();
    cut[..4].copy_from_slice(&((half - 4) as u32).to_be_bytes());
    conn.send_raw(&cut).expect("send");
    expect_closed(
        &mut conn,
        "a request whose body is cut short inside its frame",
    );

    // 5. A Produce whose batch has a bad CRC: answered with CORRUPT_MESSAGE, nothing appended,
    // and the connection stays usable.
    let mut conn = Connection::connect(&addr).expect("connect");
    let good = batch(10);
    let mut bad = good.to_vec();
    let last = bad.len() - 1; // the last record's last header value byte: CRC-covered
    bad[last] ^= 0x01;
    let request = produce_request(&mut conn, crc_topic, Bytes::from(bad));
    let response: ProduceResponse = conn
        .round_trip_raw(&request, PRODUCE_VERSION)
        .expect("a Produce response to the bad CRC batch");
    assert_eq!(
        produce_answer(&response).0,
        error_code::CORRUPT_MESSAGE,
        "a batch with a bad CRC must be refused with CORRUPT_MESSAGE: {response:?}"
    );
    let request = produce_request(&mut conn, crc_topic, good);
    let response: ProduceResponse = conn
        .round_trip_raw(&request, PRODUCE_VERSION)
        .expect("a Produce response on the same connection");
    assert_eq!(
        produce_answer(&response),
        (error_code::NONE, 0),
        "the good batch after the corrupt one is appended at offset 0: {response:?}"
    );

    // The good client kept producing all along without an error.
    thread::sleep(Duration::from_millis(500));
    producer.signal(libc::SIGTERM);
    let out = producer.wait_ok(Duration::from_secs(90));
    let acked_count = std::fs::read_to_string(&acked)
        .map(|s| s.lines().count())
        .unwrap_or(0);
    assert!(
        acked_count > 100,
        "the good producer got only {acked_count} acknowledgements: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The broker is up and answers Metadata on a new connection.
    let md = kafka::metadata(&addr).expect("Metadata after the attacks");
    assert!(md
        .topics
        .iter()
        .any(|t| t.name.as_deref() == Some(good_topic)));
    let mut conn = Connection::connect(&addr).expect("connect");
    let _: riffle_protocol::messages::MetadataResponse = conn
        .request(kafka::METADATA_VERSION, &MetadataRequest::default())
        .expect("Metadata");

    // Each closed connection has its reason in the log.
    let log = broker.stderr_log();
    for needle in [
        "frame size 2147483647",
        &format!("frame size {}", 100 * 1024 * 1024 + 1),
        "malformed Produce",
        "end of stream",
    ] {
        assert!(
            log.contains(needle),
            "no '{needle}' in the broker's log\n{}",
            broker.log_tail()
        );
    }
    // 16 random + 2 GiB + 100 MiB + 100 MiB + 1 + 2 truncated = 21 hostile connections.
    let closes = ["closing connection", "connection closed", "connection lost"]
        .iter()
        .map(|reason| log.matches(reason).count())
        .sum::<usize>();
    assert!(
        closes >= 21,
        "only {closes} logged connection ends for 21 hostile connections\n{}",
        broker.log_tail()
    );
}
