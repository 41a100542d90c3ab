//! Connection limits as a client sees them: a connection beyond `max_connections` or
//! `max_connections_per_ip` is closed at once (no response), an idle one is closed after
//! `connections_max_idle_ms`, a frame that stops halfway is closed after
//! `request_frame_timeout_ms` and gives its budget back, and a client that never reads its
//! responses is cut after `response_write_timeout_ms` without holding anyone else up.

use std::io::{ErrorKind, Read};
use std::net::IpAddr;
use std::thread;
use std::time::{Duration, Instant};

use riffle_protocol::messages::MetadataRequest;
use riffle_protocol::record_batch::{Compression, RecordBatchBuilder};
use riffle_protocol::{error_code, Bytes};
use riffle_tests::kafka::{self, Connection};
use riffle_tests::stalled::NonReadingProducer;
use riffle_tests::{Broker, BrokerOptions};

/// How long the broker may take to close a connection it should close at once.
const CLOSE_AT_ONCE: Duration = Duration::from_secs(3);
/// Slack on top of a configured timeout before a test calls the broker late (a shared CI box).
const SLACK: Duration = Duration::from_secs(8);

fn broker_with(config_toml: &str) -> Broker {
    Broker::start_with(BrokerOptions {
        config_toml: Some(config_toml.to_string()),
        ..Default::default()
    })
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

fn connect_from(broker: &Broker, last: u8) -> Connection {
    Connection::connect_from(&broker.addr(), loopback(last), None).expect("TCP connect")
}

fn metadata_request(conn: &mut Connection) -> std::io::Result<()> {
    let request = MetadataRequest {
        topics: Some(vec![]),
        ..Default::default()
    };
    conn.request::<_, riffle_protocol::messages::MetadataResponse>(
        kafka::METADATA_VERSION,
        &request,
    )
    .map(|_| ())
}

/// Reads until the broker closes the connection (EOF or reset) and returns the time it took and
/// the bytes received; panics if still open after `within`.
fn wait_closed(conn: &mut Connection, within: Duration, what: &str) -> (Duration, Vec<u8>) {
    let started = Instant::now();
    let stream = conn.stream();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("set the read timeout");
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (started.elapsed(), received),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return (started.elapsed(), received),
        }
        assert!(
            started.elapsed() < within,
            "{what}: the broker did not close the connection within {within:?}"
        );
    }
}

/// A refused connection: the TCP connect succeeds, then the broker closes it before answering
/// anything (a request sent on it gets no response).
fn assert_refused(broker: &Broker, last: u8, what: &str) {
    let mut conn = connect_from(broker, last);
    let request = conn.encode(
        kafka::METADATA_VERSION,
        &MetadataRequest {
            topics: Some(vec![]),
            ..Default::default()
        },
    );
    // The broker may have closed it already: a failed send is the same answer.
    let _ = conn.send_raw(&request);
    let (took, received) = wait_closed(&mut conn, CLOSE_AT_ONCE, what);
    assert!(
        received.is_empty(),
        "{what}: a refused connection got {} bytes of response",
        received.len()
    );
    assert!(took < CLOSE_AT_ONCE, "{what}: closed after {took:?}");
}

/// A connection the broker serves (retrying for a while: a closed connection's place is given
/// back when the broker notices the close).
fn assert_served_soon(broker: &Broker, last: u8, what: &str) -> Connection {
    let deadline = Instant::now() + CLOSE_AT_ONCE;
    loop {
        let mut conn = connect_from(broker, last);
        if metadata_request(&mut conn).is_ok() {
            return conn;
        }
        assert!(Instant::now() < deadline, "{what}: not served");
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_connection_beyond_max_connections_per_ip_is_closed_at_once_and_other_addresses_connect() {
    let broker = broker_with("max_connections = 100\nmax_connections_per_ip = 2\n");
    let first = assert_served_soon(&broker, 1, "first connection from 127.0.0.1");
    let _second = assert_served_soon(&broker, 1, "second connection from 127.0.0.1");
    assert_refused(&broker, 1, "third connection from 127.0.0.1");
    let _other = assert_served_soon(&broker, 2, "a connection from 127.0.0.2");
    let log = broker.stderr_log();
    assert!(
        log.contains("refused connection from 127.0.0.1")
            && log.contains("max_connections_per_ip (2)"),
        "no log line for the refused connection:\n{}",
        broker.log_tail()
    );
    drop(first);
    assert_served_soon(&broker, 1, "127.0.0.1 after one of its connections closed");
}

#[test]
fn a_connection_beyond_max_connections_is_closed_at_once_whatever_its_address() {
    let broker = broker_with("max_connections = 3\nmax_connections_per_ip = 10\n");
    let first = assert_served_soon(&broker, 1, "connection 1");
    let _second = assert_served_soon(&broker, 1, "connection 2");
    let _third = assert_served_soon(&broker, 2, "connection 3");
    assert_refused(&broker, 3, "connection 4 from a new address");
    assert_refused(&broker, 1, "connection 4 from a known address");
    assert!(
        broker.stderr_log().contains("max_connections (3)"),
        "no log line for the refused connection:\n{}",
        broker.log_tail()
    );
    drop(first);
    assert_served_soon(&broker, 3, "a new address once a place is free");
}

#[test]
fn an_idle_connection_is_closed_after_connections_max_idle_ms_and_a_busy_one_is_not() {
    let idle = Duration::from_millis(1500);
    let broker = broker_with(&format!("connections_max_idle_ms = {}\n", idle.as_millis()));
    let addr = broker.addr();
    let busy = thread::spawn(move || {
        let mut conn = Connection::connect(&addr).expect("connect");
        let started = Instant::now();
        while started.elapsed() < idle * 3 {
            metadata_request(&mut conn).expect("a connection in use stays open");
            thread::sleep(idle / 4);
        }
    });
    let mut conn = connect_from(&broker, 1);
    metadata_request(&mut conn).expect("Metadata");
    let (took, received) = wait_closed(&mut conn, idle + SLACK, "idle connection");
    assert!(
        received.is_empty(),
        "unexpected bytes on the idle connection"
    );
    assert!(
        took >= idle - Duration::from_millis(200),
        "closed after {took:?}, before connections_max_idle_ms {idle:?}"
    );
    busy.join().expect("the busy connection stayed open");
}

fn one_record_batch() -> Bytes {
    let mut builder = RecordBatchBuilder::new(Compression::None, 1_700_000_000_000);
    builder.append(1_700_000_000_000, Some(b"k"), Some(b"v"), &[]);
    builder.finish()
}

#[test]
fn a_frame_that_stops_after_its_size_is_closed_after_the_deadline_and_its_budget_released() {
    let frame_timeout = Duration::from_millis(1500);
    // A 2 MiB shard budget: the silent client's claim of 50 MiB takes all of it.
    let broker = broker_with(&format!(
        "request_frame_timeout_ms = {}\nshard_inflight_budget_bytes = 2097152\n",
        frame_timeout.as_millis()
    ));
    let topic = "frame-deadline";
    kafka::create_topic(&broker.addr(), topic, 1);
    let mut silent = connect_from(&broker, 2);
    let claimed_bytes: i32 = 50 << 20;
    silent
        .send_raw(&claimed_bytes.to_be_bytes())
        .expect("send a size prefix");
    silent.send_raw(&[0, 3]).expect("and two bytes of the body");
    thread::sleep(Duration::from_millis(300));

    // Another client produces: it waits for budget until the silent frame's deadline frees it.
    let started = Instant::now();
    let mut producer = Connection::connect(&broker.addr()).expect("connect");
    let (code, _) = kafka::produce(&mut producer, topic, 0, one_record_batch(), 1);
    let waited = started.elapsed();
    assert_eq!(code, error_code::NONE, "produce after the budget came back");
    assert!(
        waited < frame_timeout + SLACK,
        "the other producer waited {waited:?}"
    );
    assert!(
        waited >= frame_timeout / 2,
        "the produce took {waited:?}: the silent frame never held the budget, so the test proves nothing"
    );
    let (_, received) = wait_closed(&mut silent, SLACK, "the silent frame");
    assert!(received.is_empty(), "a response to half a frame");
    assert!(
        broker.stderr_log().contains("request_frame_timeout_ms"),
        "no log line says why:\n{}",
        broker.log_tail()
    );
}

#[test]
fn a_client_that_never_reads_is_cut_after_the_write_timeout_and_others_keep_producing() {
    let write_timeout = Duration::from_millis(3000);
    let broker = broker_with(&format!(
        "response_write_timeout_ms = {}\n",
        write_timeout.as_millis()
    ));
    // A long name makes every produce response long, so the client's buffers fill sooner.
    let topic = format!("never-reads-{}", "x".repeat(200));
    kafka::create_topic(&broker.addr(), &topic, 1);
    let stalled = NonReadingProducer::start(&broker.addr(), &topic);
    let stalled_at =
        stalled.wait_until_stalled(Duration::from_millis(300), Duration::from_secs(30));

    let mut other = Connection::connect(&broker.addr()).expect("connect");
    let started = Instant::now();
    for _ in 0..20 {
        let (code, _) = kafka::produce(&mut other, &topic, 0, one_record_batch(), -1);
        assert_eq!(code, error_code::NONE, "another client's produce");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "another client's 20 produce requests took {:?} next to the stalled one",
        started.elapsed()
    );

    let outcome = stalled.wait_until_cut(write_timeout + SLACK);
    assert!(
        matches!(
            outcome.error_kind,
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
        ),
        "the non-reading client's write failed with {outcome:?}, want a reset connection"
    );
    assert!(
        outcome.ended_at.duration_since(stalled_at) < write_timeout + SLACK,
        "cut {:?} after its writes stalled",
        outcome.ended_at.duration_since(stalled_at)
    );
    assert!(
        broker.stderr_log().contains("response_write_timeout_ms"),
        "no log line says why:\n{}",
        broker.log_tail()
    );
    let (code, _) = kafka::produce(&mut other, &topic, 0, one_record_batch(), -1);
    assert_eq!(code, error_code::NONE, "produce after the cut");
}
