//! The admin HTTP listener against the real binary: Prometheus metrics scraped and parsed
//! (counters move after a produce, histograms have buckets, lag appears for a group),
//! `/v1/status`, health and readiness during start-up and after, the listener's limits, and
//! JSON logs that parse and carry the connection's span.

use std::collections::HashMap;
use std::io::Read;
use std::net::TcpStream;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use riffle_tests::http::{self, HttpResponse};
use riffle_tests::{free_port, riffle_bin, run_ok, Background, Broker, BrokerOptions};
use serde_json::Value;

/// How long one CLI command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// The admin listener's connection cap (`ADMIN_CONNECTIONS_MAX` in broker/src/admin/http.rs).
const ADMIN_CONNECTIONS_MAX: usize = 64;
/// How long the broker may take to become ready once nothing holds it back.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

fn riffle(broker: &Broker, args: &[&str], stdin: Option<&str>) -> Output {
    run_ok(
        Command::new(riffle_bin())
            .args(args)
            .args(["--brokers", &broker.addr()]),
        stdin.map(|s| s.as_bytes().to_vec()),
        COMMAND_TIMEOUT,
    )
}

fn get(addr: &str, path: &str) -> HttpResponse {
    http::get(addr, path).unwrap_or_else(|e| panic!("GET {path} from {addr}: {e}"))
}

/// One scrape: `name{labels}` -> value, every sample line of the exposition.
pub(crate) struct Scrape(HashMap<String, f64>);

impl Scrape {
    pub(crate) fn of(broker: &Broker) -> Scrape {
        let response = get(&broker.admin_addr(), "/metrics");
        assert_eq!(response.status, 200, "{}", response.body);
        assert!(
            response.head.contains("text/plain; version=0.0.4"),
            "Prometheus' content type: {}",
            response.head
        );
        Scrape(parse_exposition(&response.body))
    }

    /// The sample whose name is `name` and whose labels include every one of `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = self.0.iter().filter(|(series, _)| {
            let (series_name, rest) = series.split_once('{').unwrap_or((series, ""));
            series_name == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        });
        let first = found.next().map(|(_, v)| *v);
        assert!(
            found.next().is_none(),
            "{name}{labels:?} names more than one series"
        );
        first
    }

    pub(crate) fn sum(&self, name: &str) -> f64 {
        self.0
            .iter()
            .filter(|(series, _)| series.split('{').next() == Some(name))
            .map(|(_, v)| v)
            .sum()
    }
}

/// Parses the text format: comments skipped, every other line `series value`.
fn parse_exposition(body: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("a sample line is `series value`: {line}"));
        let value: f64 = match value {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|e| panic!("sample value {v:?}: {e}")),
        };
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "series {series} appears twice"
        );
    }
    samples
}

#[test]
fn metrics_move_after_a_produce_and_show_lag_for_a_group() {
    let broker = Broker::start();
    let topic = "admin-metrics";
    riffle(&broker, &["topic", "create", topic, "-p", "1"], None);
    let before = Scrape::of(&broker);
    let lines: String = (0..10).map(|i| format!("record-{i}\n")).collect();
    riffle(&broker, &["produce", topic, "--acks", "all"], Some(&lines));

    let after = Scrape::of(&broker);
    let partition = [("topic", topic), ("partition", "0")];
    assert_eq!(
        after.value("riffle_partition_records_in_total", &partition),
        Some(10.0)
    );
    assert_eq!(
        after.value("riffle_partition_high_watermark", &partition),
        Some(10.0)
    );
    assert!(after.value("riffle_partition_size_bytes", &partition) > Some(10.0 * 6.0));
    assert!(
        after.sum("riffle_shard_bytes_in_total") > before.sum("riffle_shard_bytes_in_total"),
        "the shard's bytes in moved"
    );
    assert_eq!(after.sum("riffle_shard_records_in_total"), 10.0);
    assert_histogram(
        &after,
        "riffle_request_duration_seconds",
        &[("api", "Produce")],
    );
    assert_histogram(
        &after,
        "riffle_log_append_duration_seconds",
        &[("shard", "0")],
    );
    assert_histogram(
        &after,
        "riffle_log_fdatasync_duration_seconds",
        &[("shard", "0")],
    );

    riffle(
        &broker,
        &[
            "consume",
            topic,
            "--group",
            "admin-group",
            "--num",
            "4",
            "--offset",
            "start",
        ],
        None,
    );
    let consumed = Scrape::of(&broker);
    let group = [
        ("group", "admin-group"),
        ("topic", topic),
        ("partition", "0"),
    ];
    assert_eq!(
        consumed.value("riffle_consumer_group_committed_offset", &group),
        Some(4.0)
    );
    assert_eq!(
        consumed.value("riffle_consumer_group_lag", &group),
        Some(6.0)
    );
    assert!(consumed.value("riffle_partition_records_out_total", &partition) >= Some(4.0));
    assert!(consumed.sum("riffle_tail_cache_hits_total") >= 1.0);
    assert!(
        consumed.value(
            "riffle_cross_shard_requests_total",
            &[("kind", "stats"), ("direction", "served")]
        ) >= Some(3.0),
        "every scrape asks the shard"
    );
    assert_eq!(consumed.value("riffle_ready", &[]), Some(1.0));
}

/// A histogram has cumulative buckets ending at +Inf, which equals its count, and a sum.
fn assert_histogram(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) {
    let mut buckets: Vec<(f64, f64)> = scrape
        .0
        .iter()
        .filter(|(series, _)| {
            series.starts_with(&format!("{name}_bucket{{"))
                && labels
                    .iter()
                    .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(series, count)| {
            let le = series
                .split("le=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .expect("a bucket has le");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("le is a number")
            };
            (le, *count)
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(
        buckets.len() > 10,
        "{name}{labels:?} has buckets: {buckets:?}"
    );
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "cumulative: {buckets:?}"
    );
    let (last_le, total) = *buckets.last().expect("buckets");
    assert_eq!(last_le, f64::INFINITY);
    assert!(total >= 1.0, "{name}{labels:?} counted something");
    assert_eq!(scrape.value(&format!("{name}_count"), labels), Some(total));
    assert!(scrape.value(&format!("{name}_sum"), labels) > Some(0.0));
}

#[test]
fn status_reports_node_shards_partitions_groups_and_disk() {
    let broker = Broker::start_with(BrokerOptions {
        smp: 2,
        ..BrokerOptions::default()
    });
    riffle(
        &broker,
        &["topic", "create", "admin-status", "-p", "4"],
        None,
    );
    riffle(
        &broker,
        &["produce", "admin-status", "--partition", "1"],
        Some("a\nb\nc\n"),
    );
    riffle(
        &broker,
        &[
            "consume",
            "admin-status",
            "--group",
            "admin-status-group",
            "--num",
            "1",
        ],
        None,
    );
    let response = get(&broker.admin_addr(), "/v1/status");
    assert_eq!(response.status, 200, "{}", response.body);
    let status: Value = serde_json::from_str(&response.body).expect("JSON");
    assert_eq!(status["ready"], true);
    assert_eq!(status["advertised"], broker.addr());
    let shards = status["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 2);
    let partitions: Vec<&Value> = shards
        .iter()
        .flat_map(|s| s["partitions"].as_array().expect("partitions per shard"))
        .filter(|p| p["topic"] == "admin-status")
        .collect();
    assert_eq!(partitions.len(), 4, "every partition, on one shard each");
    let written = partitions
        .iter()
        .find(|p| p["partition"] == 1)
        .expect("partition 1");
    assert_eq!(written["high_watermark"], 3);
    assert!(written["size_bytes"].as_u64() > Some(0));
    assert!(shards.iter().all(|s| s["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["shard"] == s["shard"])));
    let topic = status["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "admin-status")
        .expect("the topic");
    assert_eq!(topic["partitions"], 4);
    assert_eq!(topic["records"], 3);
    let group = status["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group_id"] == "admin-status-group")
        .expect("the group");
    assert_eq!(group["lag"], 2, "{group}");
    assert!(status["disk"]["filesystem_bytes"].as_u64() > Some(0));
    assert!(status["disk"]["log_bytes"].as_u64() > Some(0));
}

#[test]
fn the_admin_listener_refuses_what_it_does_not_serve() {
    let broker = Broker::start();
    let admin = broker.admin_addr();
    assert_eq!(get(&admin, "/v1/health").status, 200);
    assert_eq!(get(&admin, "/nothing-here").status, 404);
    let post = http::exchange(
        &admin,
        b"POST /v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    .expect("POST");
    assert_eq!(post.status, 405);
    let with_body = http::exchange(
        &admin,
        b"GET /v1/status HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .expect("GET with a body");
    assert_eq!(with_body.status, 413);
    // A head at the limit (16 KiB) is refused with 431, and the listener goes on serving.
    let huge = format!(
        "GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\nConnection: close\r\n\r\n",
        "p".repeat(17 * 1024)
    );
    let refused = http::exchange(&admin, huge.as_bytes()).expect("oversized head");
    assert_eq!(refused.status, 431);
    let large = format!(
        "GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\nConnection: close\r\n\r\n",
        "p".repeat(8 * 1024)
    );
    assert_eq!(
        http::exchange(&admin, large.as_bytes()).unwrap().status,
        200
    );

    // 64 admin connections (ADMIN_CONNECTIONS_MAX) are held; the 65th is closed at once.
    let held: Vec<TcpStream> = (0..ADMIN_CONNECTIONS_MAX)
        .map(|_| TcpStream::connect(&admin).expect("connect"))
        .collect();
    let mut extra = TcpStream::connect(&admin).expect("connect");
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(
        extra.read(&mut byte).expect("closed, not timed out"),
        0,
        "the connection past the cap is closed without an answer"
    );
    drop(held);
    let served = wait_for(
        || {
            http::get(&admin, "/v1/health")
                .ok()
                .filter(|r| r.status == 200)
        },
        "a slot freed by closing the held connections",
    );
    assert_eq!(served.body, r#"{"status":"ok"}"#);
}

#[test]
fn health_answers_and_ready_waits_until_the_logs_are_recovered() {
    let mut broker = Broker::start();
    riffle(&broker, &["topic", "create", "admin-recovery"], None);
    riffle(&broker, &["produce", "admin-recovery"], Some("one\ntwo\n"));
    broker.stop();
    // Recovery reads the partition's producer-state snapshot; as a FIFO it holds the start-up
    // there until the test writes it, which makes the start-up window as long as the test needs.
    let snapshot = broker
        .data_dir()
        .join("admin-recovery-0")
        .join("producer-state.json");
    let saved = std::fs::read(&snapshot).expect("the snapshot written at shutdown");
    std::fs::remove_file(&snapshot).unwrap();
    let c_path = std::ffi::CString::new(snapshot.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads the valid C string we pass.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);

    let admin = format!("127.0.0.1:{}", free_port());
    let _starting = Background::spawn(
        Command::new(riffle_bin())
            .env_remove("RUST_LOG")
            .args(["serve", "--smp", "1", "--listen"])
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("--data-dir")
            .arg(broker.data_dir())
            .args(["--admin-listen", &admin]),
    );
    let health = wait_for(
        || http::get(&admin, "/v1/health").ok(),
        "the admin listener",
    );
    assert_eq!(health.status, 200);
    let ready = get(&admin, "/v1/ready");
    assert_eq!(
        ready.status, 503,
        "not ready while recovering: {}",
        ready.body
    );
    let reason: Value = serde_json::from_str(&ready.body).expect("JSON");
    assert_eq!(reason["ready"], false);
    assert!(
        reason["reason"].as_str().unwrap().contains("0 of 1 shard"),
        "{reason}"
    );

    // Opening a FIFO for writing waits for its reader: on a thread, so that a broker that never
    // reads it fails the readiness wait below instead of hanging the test.
    std::thread::spawn(move || std::fs::write(&snapshot, saved).expect("feed the FIFO"));
    let ready = wait_for(
        || {
            http::get(&admin, "/v1/ready")
                .ok()
                .filter(|r| r.status == 200)
        },
        "readiness",
    );
    assert_eq!(ready.body, r#"{"ready":true}"#);
    assert_eq!(get(&admin, "/v1/health").status, 200);
}

fn wait_for<T>(mut probe: impl FnMut() -> Option<T>, what: &str) -> T {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} within {READY_TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn json_logs_parse_and_carry_the_connection_span() {
    let mut broker = Broker::start_with(BrokerOptions {
        log_level: "info,riffle::connection=debug".to_string(),
        extra_args: vec!["--log-format".to_string(), "json".to_string()],
        ..BrokerOptions::default()
    });
    riffle(&broker, &["topic", "create", "admin-logs"], None);
    riffle(&broker, &["produce", "admin-logs"], Some("logged\n"));
    broker.stop();
    let log = broker.stderr_log();
    let events: Vec<Value> = log
        .lines()
        .filter(|l| !l.starts_with("---- riffle-tests"))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let message = |e: &Value| e["fields"]["message"].as_str().unwrap_or("").to_string();
    assert!(events
        .iter()
        .any(|e| message(e).starts_with("riffle listening") && e["level"] == "INFO"));
    let closed = events
        .iter()
        .find(|e| message(e).starts_with("connection closed"))
        .unwrap_or_else(|| panic!("a connection's close is logged: {log}"));
    let span = &closed["spans"][0];
    assert_eq!(span["name"], "connection", "{closed}");
    assert!(
        span["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{closed}"
    );
    assert_eq!(span["client_id"], "riffle-cli", "{closed}");
}

#[test]
fn the_console_renders_topics_and_groups_and_updates_live_in_chromium() {
    let broker = Broker::start();
    let (topic, group) = ("console-topic", "console-group");
    riffle(&broker, &["topic", "create", topic, "-p", "1"], None);
    riffle(&broker, &["produce", topic], Some("a\nb\nc\nd\ne\n"));
    riffle(
        &broker,
        &[
            "consume", topic, "--group", group, "--num", "2", "--offset", "start",
        ],
        None,
    );
    let admin_url = format!("http://{}", broker.admin_addr());
    let out = riffle_tests::python_ok(
        "console_chromium.py",
        &[&broker.addr(), &admin_url, topic, group, "5", "2", "7"],
        Duration::from_secs(120),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("updated in place to high watermark 12"),
        "{stdout}"
    );
}
