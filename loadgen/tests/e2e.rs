//! End to end: starts the real release `riffle` broker (RIFFLE_BIN, or `riffle` next to this
//! test's target directory), runs riffle-loadgen's produce, consume and e2e against it for a
//! few seconds each, and checks the files and their numbers against each other and against
//! the offsets the broker holds, and the consumer group's committed offsets. Also: consumers
//! of one group split the partitions; an unreachable broker fails fast.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use riffle_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use riffle_protocol::messages::list_offsets_response::ListOffsetsResponse;
use riffle_protocol::messages::offset_fetch_request::{
    OffsetFetchRequest, OffsetFetchRequestTopic,
};
use riffle_protocol::messages::offset_fetch_response::OffsetFetchResponse;
use riffle_protocol::{decode_response, encode_request, Bytes, Message, RequestHeader};
use serde_json::Value;

const LOADGEN: &str = env!("CARGO_BIN_EXE_riffle-loadgen");
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

fn riffle_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RIFFLE_BIN") {
        return PathBuf::from(p);
    }
    // <target>/<profile>/deps/e2e-<hash> → <target>/release/riffle
    let exe = std::env::current_exe().expect("test executable path");
    let target = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("test executable inside <target>/<profile>/deps");
    target.join("release").join("riffle")
}

/// The broker process; killed when dropped.
struct Broker {
    child: Child,
    port: u16,
    _data: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

fn start_broker() -> Broker {
    let bin = riffle_bin();
    assert!(
        bin.exists(),
        "riffle binary not found at {} (build it with `cargo build --release -p riffle-broker` \
         into the same target directory, or set RIFFLE_BIN)",
        bin.display()
    );
    // The target directory is on a real disk (the broker uses O_DIRECT; tmpfs would hide that).
    let data = tempfile::Builder::new()
        .prefix("loadgen-e2e-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp data dir");
    let port = free_port();
    let mut child = Command::new(&bin)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--smp",
            "1",
            "--data-dir",
        ])
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("riffle listening on") {
                let _ = tx.send(());
            }
        }
    });
    let broker = Broker {
        child,
        port,
        _data: data,
    };
    rx.recv_timeout(Duration::from_secs(15))
        .expect("riffle did not print `riffle listening on` within 15 s");
    broker
}

fn run_loadgen(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = Command::new(LOADGEN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start riffle-loadgen");
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            panic!("riffle-loadgen {args:?} did not finish in {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (out, started.elapsed())
}

fn run_ok(args: &[&str]) -> String {
    let (out, _) = run_loadgen(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "riffle-loadgen {args:?} failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn summary(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json written");
    serde_json::from_str(&text).expect("summary.json is JSON")
}

fn u(v: &Value, path: &[&str]) -> u64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not a number in {v}"))
}

/// Percentiles ordered, and the .hgrm file agrees with the summary on the count.
fn check_latency_files(dir: &Path, s: &Value) {
    let kind = s["latency_kind"].as_str().expect("latency_kind");
    let l = &s["latency_us"];
    let ps: Vec<u64> = ["p50", "p90", "p99", "p999", "p9999", "max"]
        .iter()
        .map(|k| u(l, &[k]))
        .collect();
    assert!(
        ps.windows(2).all(|w| w[0] <= w[1]),
        "percentiles not ordered: {ps:?}"
    );
    assert!(ps[0] > 0, "p50 is 0 µs");
    let hgrm = std::fs::read_to_string(dir.join(format!("{kind}.hgrm"))).expect(".hgrm written");
    assert!(hgrm.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
    let count = u(l, &["count"]);
    assert!(
        hgrm.contains(&format!("Total count    = {count:>12}]")),
        "hgrm total count differs from summary count {count}"
    );
    let csv = std::fs::read_to_string(dir.join("timeline.csv")).expect("timeline.csv written");
    assert!(csv.starts_with("second,messages,mb_per_s,"));
}

/// One request on a new connection, and its response.
fn call<Req: Message, Resp: Message>(port: u16, version: i16, request: &Req) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the broker");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let header = RequestHeader {
        request_api_key: Req::API_KEY as i16,
        request_api_version: version,
        correlation_id: 42,
        client_id: Some("e2e-test".into()),
    };
    for c in encode_request(&header, request).unwrap() {
        s.write_all(&c).unwrap();
    }
    let mut size = [0u8; 4];
    s.read_exact(&mut size).unwrap();
    let mut frame = vec![0u8; u32::from_be_bytes(size) as usize];
    s.read_exact(&mut frame).unwrap();
    let (corr, resp) = decode_response::<Resp>(Bytes::from(frame), version).unwrap();
    assert_eq!(corr, 42);
    resp
}

/// The log end offset of each partition, in partition order.
fn log_end_offsets(port: u16, topic: &str, partitions: i32) -> Vec<i64> {
    let resp: ListOffsetsResponse = call(
        port,
        7,
        &ListOffsetsRequest {
            replica_id: -1,
            isolation_level: 0,
            topics: vec![ListOffsetsTopic {
                name: topic.into(),
                partitions: (0..partitions)
                    .map(|p| ListOffsetsPartition {
                        partition_index: p,
                        timestamp: -1,
                        ..Default::default()
                    })
                    .collect(),
            }],
            timeout_ms: 5000,
        },
    );
    let mut parts: Vec<_> = resp
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .collect();
    assert_eq!(parts.len(), partitions as usize);
    parts.sort_by_key(|p| p.partition_index);
    parts
        .iter()
        .map(|p| {
            assert_eq!(
                p.error_code, 0,
                "ListOffsets error on partition {}",
                p.partition_index
            );
            p.offset
        })
        .collect()
}

/// Sum over partitions of the log end offsets the broker reports (the topics are new: start 0).
fn broker_message_count(port: u16, topic: &str, partitions: i32) -> u64 {
    log_end_offsets(port, topic, partitions)
        .iter()
        .map(|&o| o as u64)
        .sum()
}

/// The offsets `group` committed for each partition, in partition order (-1: none).
fn committed_offsets(port: u16, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let resp: OffsetFetchResponse = call(
        port,
        7,
        &OffsetFetchRequest {
            group_id: group.into(),
            topics: Some(vec![OffsetFetchRequestTopic {
                name: topic.into(),
                partition_indexes: (0..partitions).collect(),
            }]),
            ..Default::default()
        },
    );
    assert_eq!(resp.error_code, 0, "OffsetFetch for group {group}");
    let mut parts: Vec<_> = resp
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .collect();
    assert_eq!(parts.len(), partitions as usize);
    parts.sort_by_key(|p| p.partition_index);
    parts.iter().map(|p| p.committed_offset).collect()
}

/// The partitions of each assignment a run's notes report for `group`:
/// "group G joined, generation N: member M assigned T partitions [0, 2] at …".
fn assignments(stdout: &str, group: &str) -> Vec<Vec<i32>> {
    let prefix = format!("note: group {group} joined, generation ");
    stdout
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .map(|l| {
            let list = l
                .split_once(" partitions [")
                .and_then(|(_, rest)| rest.split_once(']'))
                .unwrap_or_else(|| panic!("no partition list in {l:?}"))
                .0;
            list.split(", ")
                .filter(|p| !p.is_empty())
                .map(|p| p.parse().expect("partition number"))
                .collect()
        })
        .collect()
}

#[test]
fn produce_consume_e2e_numbers_agree_with_the_broker() {
    let broker = start_broker();
    let bootstrap = format!("127.0.0.1:{}", broker.port);
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name);
    let path = |p: &Path| p.to_str().unwrap().to_string();

    // produce: 2000 msgs/s for 1 s warm-up + 3 s measured.
    let produce_dir = d("produce");
    let stdout = run_ok(&[
        "produce",
        "--bootstrap",
        &bootstrap,
        "--topic",
        "lg-e2e",
        "--create-partitions",
        "3",
        "--size",
        "200",
        "--rate",
        "2000",
        "--warmup",
        "1s",
        "--duration",
        "3s",
        "--acks",
        "all",
        "--out",
        &path(&produce_dir),
        "--quiet",
    ]);
    assert!(stdout.contains("msgs/s"), "{stdout}");
    let p = summary(&produce_dir);
    check_latency_files(&produce_dir, &p);
    assert_eq!(p["workload"], "produce");
    assert_eq!(u(&p, &["errors"]), 0, "{p}");
    // The schedule is 8,000 messages (6,000 measured). A machine busy with other tests can make
    // the loadgen fall behind it; then it must say so instead of claiming the rate.
    let produced = u(&p, &["messages_total"]);
    assert!((1_000..=8_000).contains(&produced), "produced {produced}");
    assert_eq!(u(&p, &["messages"]), u(&p, &["latency_us", "count"]));
    if p["target_rate_met"] == true {
        assert!(
            (7_800..=8_000).contains(&produced),
            "produced {produced}: {p}"
        );
        assert!((5_900..=6_000).contains(&u(&p, &["messages"])), "{p}");
    }
    assert_eq!(u(&p, &["bytes"]), 200 * u(&p, &["messages"]));
    assert_eq!(broker_message_count(broker.port, "lg-e2e", 3), produced);

    // consume: everything produced above, as the only member of group g1 (whose first
    // rebalance waits out the broker's 3 s group.initial.rebalance.delay.ms).
    let consume_dir = d("consume");
    let stdout = run_ok(&[
        "consume",
        "--bootstrap",
        &bootstrap,
        "--topic",
        "lg-e2e",
        "--group",
        "g1",
        "--warmup",
        "0s",
        "--duration",
        "6s",
        "--out",
        &path(&consume_dir),
        "--quiet",
    ]);
    assert_eq!(
        assignments(&stdout, "g1"),
        vec![vec![0, 1, 2]],
        "joined once, assigned every partition: {stdout}"
    );
    let c = summary(&consume_dir);
    check_latency_files(&consume_dir, &c);
    assert_eq!(u(&c, &["errors"]), 0, "{c}");
    assert_eq!(u(&c, &["consumed", "messages_total"]), produced);
    assert_eq!(u(&c, &["messages"]), produced);
    assert_eq!(u(&c, &["latency_us", "count"]), produced);
    assert!(
        c["notes"].as_array().unwrap().iter().any(|n| n
            .as_str()
            .unwrap()
            .starts_with("group g1 joined, generation")),
        "{c}"
    );
    assert_eq!(
        committed_offsets(broker.port, "g1", "lg-e2e", 3),
        log_end_offsets(broker.port, "lg-e2e", 3),
        "the group committed the consumed end"
    );

    // e2e: producers and consumers together on a new topic.
    let e2e_dir = d("e2e");
    run_ok(&[
        "e2e",
        "--bootstrap",
        &bootstrap,
        "--topic",
        "lg-e2e-2",
        "--create-partitions",
        "2",
        "--size",
        "100",
        "--rate",
        "1000",
        "--warmup",
        "1s",
        "--duration",
        "3s",
        "--out",
        &path(&e2e_dir),
        "--quiet",
    ]);
    let e = summary(&e2e_dir);
    check_latency_files(&e2e_dir, &e);
    assert_eq!(e["latency_kind"], "e2e");
    assert_eq!(u(&e, &["errors"]), 0, "{e}");
    let e_produced = u(&e, &["produced", "messages_total"]);
    assert!((3_900..=4_000).contains(&e_produced), "{e_produced}");
    assert_eq!(u(&e, &["consumed", "messages_total"]), e_produced);
    assert_eq!(broker_message_count(broker.port, "lg-e2e-2", 2), e_produced);
    assert!(e["latencies"]["produce"]["count"].as_u64().unwrap() > 0);
    assert_eq!(
        u(&e, &["latencies", "e2e", "count"]),
        u(&e, &["consumed", "messages"]),
        "every measured record carried a send timestamp"
    );

    // report and compare read the three runs back.
    let stdout = run_ok(&[
        "report",
        &path(&produce_dir),
        &path(&consume_dir),
        &path(&e2e_dir),
    ]);
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
    let chart = d("chart.svg");
    run_ok(&[
        "compare",
        &path(&produce_dir),
        &path(&e2e_dir),
        "--out",
        &path(&chart),
    ]);
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
}

#[test]
fn consumers_in_one_group_split_the_partitions_and_resume_from_its_commits() {
    let broker = start_broker();
    let bootstrap = format!("127.0.0.1:{}", broker.port);
    run_ok(&[
        "produce",
        "--bootstrap",
        &bootstrap,
        "--topic",
        "lg-split",
        "--create-partitions",
        "4",
        "--size",
        "100",
        "--rate",
        "2000",
        "--warmup",
        "0s",
        "--duration",
        "2s",
        "--quiet",
    ]);
    let produced = broker_message_count(broker.port, "lg-split", 4);
    assert!(produced > 0);
    let dir = tempfile::tempdir().unwrap();
    let consume = |name: &str, consumers: &str| {
        let out = dir.path().join(name);
        let child = Command::new(LOADGEN)
            .args([
                "consume",
                "--bootstrap",
                &bootstrap,
                "--topic",
                "lg-split",
                "--group",
                "gs",
                "--consumers",
                consumers,
                "--warmup",
                "0s",
                "--duration",
                "6s",
                "--quiet",
                "--out",
            ])
            .arg(&out)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start riffle-loadgen");
        (child, out)
    };
    let finish = |(child, out): (Child, PathBuf)| {
        let o = child.wait_with_output().expect("output");
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(o.status.success(), "{stdout}");
        (stdout, summary(&out))
    };

    // Two processes, one consumer each, in one group.
    let a = consume("a", "1");
    let b = consume("b", "1");
    let (a, b) = (finish(a), finish(b));
    let mut all = Vec::new();
    for (stdout, s) in [&a, &b] {
        assert_eq!(u(s, &["errors"]), 0, "{s}");
        let last = assignments(stdout, "gs")
            .pop()
            .unwrap_or_else(|| panic!("group gs not joined: {stdout}"));
        assert!(!last.is_empty(), "each member gets a share: {stdout}");
        all.extend(last);
    }
    all.sort_unstable();
    assert_eq!(all, vec![0, 1, 2, 3], "together all partitions, each once");
    let consumed =
        u(&a.1, &["consumed", "messages_total"]) + u(&b.1, &["consumed", "messages_total"]);
    assert!(consumed >= produced, "{consumed} of {produced}");
    assert_eq!(
        committed_offsets(broker.port, "gs", "lg-split", 4),
        log_end_offsets(broker.port, "lg-split", 4)
    );

    // Two members in one process: they split the partitions too, and start where the group
    // left off (nothing new to read).
    let (stdout, s) = finish(consume("c", "2"));
    assert_eq!(u(&s, &["errors"]), 0, "{s}");
    let shares = assignments(&stdout, "gs");
    assert_eq!(shares.len(), 2, "{stdout}");
    assert!(shares.iter().all(|p| !p.is_empty()), "{stdout}");
    assert_eq!(shares.concat().len(), 4, "{stdout}");
    assert_eq!(u(&s, &["consumed", "messages_total"]), 0, "{s}");
    assert!(stdout.contains("(2 from committed offsets)"), "{stdout}");
}

#[test]
fn unreachable_broker_fails_fast_with_a_clear_message() {
    let port = free_port(); // nothing listens there now
    let (out, took) = run_loadgen(&[
        "produce",
        "--bootstrap",
        &format!("127.0.0.1:{port}"),
        "--topic",
        "t",
        "--duration",
        "10s",
    ]);
    assert!(!out.status.success());
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect to broker"), "{stderr}");
}

#[test]
fn broker_dying_mid_run_is_reported_and_ends_on_time() {
    let mut broker = start_broker();
    let bootstrap = format!("127.0.0.1:{}", broker.port);
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("dies");
    let started = Instant::now();
    let child = Command::new(LOADGEN)
        .args([
            "produce",
            "--bootstrap",
            &bootstrap,
            "--topic",
            "lg-dies",
            "--create-partitions",
            "2",
            "--rate",
            "2000",
            "--warmup",
            "0s",
            "--duration",
            "3s",
            "--quiet",
            "--out",
        ])
        .arg(&out_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start riffle-loadgen");
    std::thread::sleep(Duration::from_millis(1500));
    broker.child.kill().expect("kill the broker");
    let out = child.wait_with_output().expect("output");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert!(!out.status.success(), "a run with errors exits non-zero");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("errors during the run"), "{stderr}");
    let s = summary(&out_dir);
    assert!(u(&s, &["errors"]) > 0);
    assert!(
        u(&s, &["messages"]) > 0,
        "messages before the kill still count"
    );
    assert_eq!(s["target_rate_met"], false);
}
