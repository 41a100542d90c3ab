//! The admin CLI (`riffle topic|produce|consume|group|cluster`) against the real broker:
//! every command, its tables and `--json`, the errors a user meets (topic exists, unknown
//! topic, broker down or silent), and kcat as the third-party judge of what it writes and
//! commits.

use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use riffle_tests::{free_port, kcat_bin, riffle_bin, run_ok, run_with_timeout, Background, Broker};
use serde_json::Value;

/// How long one CLI command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long kcat may take.
const KCAT_TIMEOUT: Duration = Duration::from_secs(60);

fn riffle(broker: &str, args: &[&str], stdin: Option<&str>) -> Output {
    run_with_timeout(
        Command::new(riffle_bin())
            .args(args)
            .args(["--brokers", broker]),
        stdin.map(|s| s.as_bytes().to_vec()),
        COMMAND_TIMEOUT,
    )
}

/// Runs a command that must succeed; returns its standard output.
fn riffle_ok(broker: &str, args: &[&str], stdin: Option<&str>) -> String {
    let out = riffle(broker, args, stdin);
    assert!(
        out.status.success(),
        "riffle {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn riffle_json(broker: &str, args: &[&str], stdin: Option<&str>) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = riffle_ok(broker, &args, stdin);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("riffle {args:?}: not JSON ({e}): {out}"))
}

/// Runs a command that must fail; returns its one-line error.
fn riffle_error(broker: &str, args: &[&str]) -> String {
    let out = riffle(broker, args, None);
    assert_eq!(out.status.code(), Some(1), "riffle {args:?} should fail");
    let stderr = String::from_utf8(out.stderr).expect("UTF-8 stderr");
    assert_eq!(stderr.lines().count(), 1, "one line of error: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr.trim_end().to_string()
}

fn topic_names(broker: &str) -> Vec<String> {
    riffle_json(broker, &["topic", "list"], None)
        .as_array()
        .expect("a list")
        .iter()
        .map(|t| t["name"].as_str().expect("a name").to_string())
        .collect()
}

#[test]
fn topic_commands_create_list_describe_alter_grow_and_delete() {
    let broker = Broker::start();
    let addr = broker.addr();
    let out = riffle_ok(
        &addr,
        &[
            "topic",
            "create",
            "orders",
            "-p",
            "3",
            "-c",
            "retention.ms=3600000",
        ],
        None,
    );
    assert_eq!(out, "created topic 'orders' with 3 partitions\n");
    let list = riffle_ok(&addr, &["topic", "list"], None);
    let row: Vec<&str> = list
        .lines()
        .find(|l| l.starts_with("orders"))
        .expect("listed")
        .split_whitespace()
        .collect();
    assert_eq!(row, ["orders", "3", "1", "no"], "{list}");

    let d = riffle_json(&addr, &["topic", "describe", "orders"], None);
    assert_eq!(d["partitions"].as_array().unwrap().len(), 3);
    assert_eq!(d["partitions"][0]["log_end_offset"], 0);
    let config = |d: &Value, name: &str| {
        d["configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["value"].clone())
    };
    assert_eq!(config(&d, "retention.ms"), Some(Value::from("3600000")));

    riffle_ok(
        &addr,
        &[
            "topic",
            "alter-config",
            "orders",
            "--set",
            "cleanup.policy=compact",
            "--delete",
            "retention.ms",
        ],
        None,
    );
    let d = riffle_json(&addr, &["topic", "describe", "orders"], None);
    assert_eq!(config(&d, "cleanup.policy"), Some(Value::from("compact")));
    assert_eq!(config(&d, "retention.ms"), None, "back to the default: {d}");
    let human = riffle_ok(&addr, &["topic", "describe", "orders"], None);
    assert!(
        human.contains("PARTITION  LEADER") && human.contains("cleanup.policy  compact"),
        "{human}"
    );

    let grown = riffle_json(
        &addr,
        &["topic", "add-partitions", "orders", "--num", "2"],
        None,
    );
    assert_eq!(grown["partitions"], 5);
    let d = riffle_json(&addr, &["topic", "describe", "orders"], None);
    assert_eq!(d["partitions"].as_array().unwrap().len(), 5);

    assert_eq!(
        riffle_ok(&addr, &["topic", "delete", "orders"], None),
        "deleted topic 'orders'\n"
    );
    assert!(!topic_names(&addr).contains(&"orders".to_string()));
}

#[test]
fn errors_name_the_kafka_error_in_one_line_and_exit_non_zero() {
    let broker = Broker::start();
    let addr = broker.addr();
    riffle_ok(&addr, &["topic", "create", "dup"], None);
    let e = riffle_error(&addr, &["topic", "create", "dup"]);
    assert!(
        e.starts_with("error: TOPIC_ALREADY_EXISTS: ") && e.contains("'dup'"),
        "{e}"
    );

    for args in [
        &["topic", "describe", "ghost"][..],
        &["topic", "delete", "ghost"],
        &["topic", "add-partitions", "ghost", "--num", "1"],
        &["consume", "ghost", "-n", "1"],
        &["produce", "ghost"],
    ] {
        let e = riffle_error(&addr, args);
        assert!(
            e.starts_with("error: UNKNOWN_TOPIC_OR_PARTITION: ") && e.contains("'ghost'"),
            "{args:?}: {e}"
        );
    }
    let e = riffle_error(&addr, &["group", "describe", "ghost"]);
    assert_eq!(e, "error: GROUP_ID_NOT_FOUND: group 'ghost' does not exist");

    // A bad flag is a usage error (clap's exit code 2) that names what is wrong.
    let out = riffle(&addr, &["consume", "dup", "--format", "{nope}"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field {nope}"));
}

#[test]
fn a_broker_that_is_down_or_silent_gives_a_clear_message_within_the_timeout() {
    let down = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let e = riffle_error(&down, &["topic", "list"]);
    assert!(
        e.starts_with(&format!("error: cannot connect to broker {down}: ")),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // Accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr").to_string();
    let started = Instant::now();
    let e = riffle_error(&addr, &["cluster", "info", "--timeout-ms", "1500"]);
    assert_eq!(
        e,
        format!("error: broker {addr} did not answer ApiVersions within 1500 ms")
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(6),
        "{took:?}"
    );
}

#[test]
fn produce_and_consume_keep_keys_headers_and_follow_offset_specs() {
    let broker = Broker::start();
    let addr = broker.addr();
    riffle_ok(&addr, &["topic", "create", "events"], None);
    let produced = riffle_json(
        &addr,
        &[
            "produce", "events", "--key", "k1", "-H", "a=1", "-H", "b=x=y",
        ],
        Some("one\ntwo\nthree\n"),
    );
    assert_eq!(produced["records"], 3);
    assert_eq!(produced["partitions"][0]["first_offset"], 0);
    assert_eq!(produced["partitions"][0]["last_offset"], 2);
    let out = riffle_ok(
        &addr,
        &["produce", "events", "--acks", "1"],
        Some("four\nfive\n"),
    );
    assert_eq!(
        out,
        "produced 2 records to 'events' (partition 0 offsets 3..4)\n"
    );
    // acks=0 has no answer, so no offsets to report; the records still arrive.
    let out = riffle_ok(&addr, &["produce", "events", "--acks", "0"], Some("six\n"));
    assert_eq!(out, "produced 1 records to 'events' (partition 0)\n");
    // Waits (long polls) until the broker has made it readable.
    let sixth = riffle_ok(&addr, &["consume", "events", "-o", "5", "-n", "1"], None);
    assert_eq!(sixth, "six\n");

    let format = "{partition}/{offset} {key}={value} [{headers}]";
    let all = riffle_ok(&addr, &["consume", "events", "-n", "5", "-f", format], None);
    assert_eq!(
        all,
        "0/0 k1=one [a=1,b=x=y]\n0/1 k1=two [a=1,b=x=y]\n0/2 k1=three [a=1,b=x=y]\n0/3 =four []\n0/4 =five []\n"
    );
    let last_two = riffle_ok(&addr, &["consume", "events", "-o", "-2", "-e"], None);
    assert_eq!(last_two, "five\nsix\n");
    let from_three = riffle_ok(&addr, &["consume", "events", "-o", "3", "-n", "1"], None);
    assert_eq!(from_three, "four\n");
    assert_eq!(
        riffle_ok(&addr, &["consume", "events", "-o", "end", "-e"], None),
        ""
    );

    let line = riffle_ok(&addr, &["consume", "events", "-n", "1", "--json"], None);
    let r: Value = serde_json::from_str(line.trim()).expect("a JSON record");
    assert_eq!(
        (r["key"].as_str(), r["value"].as_str(), r["offset"].as_i64()),
        (Some("k1"), Some("one"), Some(0))
    );
    assert_eq!(r["headers"]["b"], "x=y");
    assert!(r["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
}

#[test]
fn kcat_reads_what_riffle_produce_wrote_with_keys_and_headers() {
    let broker = Broker::start();
    let addr = broker.addr();
    riffle_ok(&addr, &["topic", "create", "to-kcat", "-p", "4"], None);
    let lines: String = (0..20).map(|i| format!("key-{i}:value-{i}\n")).collect();
    riffle_ok(
        &addr,
        &[
            "produce",
            "to-kcat",
            "--key-separator",
            ":",
            "-H",
            "origin=riffle-cli",
        ],
        Some(&lines),
    );
    let out = run_ok(
        Command::new(kcat_bin()).args([
            "-C",
            "-b",
            &addr,
            "-t",
            "to-kcat",
            "-o",
            "beginning",
            "-e",
            "-J",
            "-q",
        ]),
        None,
        KCAT_TIMEOUT,
    );
    let mut seen: Vec<(String, String, i64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let m: Value = serde_json::from_str(l).expect("kcat -J line");
            assert_eq!(
                m["headers"],
                serde_json::json!(["origin", "riffle-cli"]),
                "{l}"
            );
            let key = m["key"].as_str().expect("key").to_string();
            (
                key,
                m["payload"].as_str().expect("payload").to_string(),
                m["partition"].as_i64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen.len(), 20);
    for (key, value, _) in &seen {
        assert_eq!(value, &key.replace("key", "value"));
    }
    // Keys go where Kafka's default partitioner (murmur2) puts them, as librdkafka's
    // murmur2_random partitioner does; kcat produces this key and must agree.
    let p = seen.iter().find(|s| s.0 == "key-7").expect("key-7").2;
    run_ok(
        Command::new(kcat_bin()).args([
            "-P",
            "-b",
            &addr,
            "-t",
            "to-kcat",
            "-K",
            ":",
            "-X",
            "partitioner=murmur2_random",
        ]),
        Some(b"key-7:again\n".to_vec()),
        KCAT_TIMEOUT,
    );
    let again = riffle_ok(
        &addr,
        &["consume", "to-kcat", "-p", &p.to_string(), "-o", "-1", "-e"],
        None,
    );
    assert_eq!(again, "again\n");
}

#[test]
fn a_riffle_group_consumes_what_kcat_produced_commits_and_shows_lag_zero() {
    let broker = Broker::start();
    let addr = broker.addr();
    riffle_ok(&addr, &["topic", "create", "work", "-p", "3"], None);
    let input: String = (0..30).map(|i| format!("k{i}:job-{i}\n")).collect();
    run_ok(
        Command::new(kcat_bin())
            .args(["-P", "-b", &addr, "-t", "work", "-K", ":", "-H", "src=kcat"]),
        Some(input.into_bytes()),
        KCAT_TIMEOUT,
    );
    let out = riffle_ok(
        &addr,
        &[
            "consume",
            "work",
            "-g",
            "workers",
            "-n",
            "30",
            "-f",
            "{key} {value} {headers}",
        ],
        None,
    );
    let mut got: Vec<&str> = out.lines().collect();
    got.sort();
    let mut want: Vec<String> = (0..30).map(|i| format!("k{i} job-{i} src=kcat")).collect();
    want.sort();
    assert_eq!(got, want);

    let list = riffle_json(&addr, &["group", "list"], None);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|g| g["group"] == "workers"),
        "{list}"
    );
    let d = riffle_json(&addr, &["group", "describe", "workers"], None);
    let offsets = d["offsets"].as_array().expect("offsets");
    assert_eq!(offsets.len(), 3, "{d}");
    assert!(offsets.iter().all(|o| o["lag"] == 0), "{d}");
    let committed: i64 = offsets
        .iter()
        .map(|o| o["committed_offset"].as_i64().unwrap())
        .sum();
    assert_eq!(committed, 30);
    let human = riffle_ok(&addr, &["group", "describe", "workers"], None);
    assert!(
        human.contains("total lag 0") && human.contains("CURRENT-OFFSET"),
        "{human}"
    );

    // Back to the start: the lag is everything again, and the group reads it all again.
    riffle_ok(
        &addr,
        &["group", "seek", "workers", "-t", "work", "--to", "start"],
        None,
    );
    let d = riffle_json(&addr, &["group", "describe", "workers"], None);
    let lag: i64 = d["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["lag"].as_i64().unwrap())
        .sum();
    assert_eq!(lag, 30);
    let again = riffle_ok(
        &addr,
        &["consume", "work", "-g", "workers", "-n", "30"],
        None,
    );
    assert_eq!(again.lines().count(), 30);

    riffle_ok(&addr, &["group", "delete", "workers"], None);
    let list = riffle_json(&addr, &["group", "list"], None);
    assert!(
        !list
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["group"] == "workers"),
        "{list}"
    );
}

#[test]
fn group_describe_shows_a_running_member_and_its_assignment_until_ctrl_c() {
    let broker = Broker::start();
    let addr = broker.addr();
    riffle_ok(&addr, &["topic", "create", "live", "-p", "2"], None);
    riffle_ok(&addr, &["produce", "live", "-p", "1"], Some("x\ny\n"));
    let consumer = Background::spawn(Command::new(riffle_bin()).args([
        "consume",
        "live",
        "-g",
        "watchers",
        "--brokers",
        &addr,
    ]));
    let deadline = Instant::now() + Duration::from_secs(30);
    let d = loop {
        // GROUP_ID_NOT_FOUND until the consumer has reached the coordinator.
        let out = riffle(&addr, &["group", "describe", "watchers", "--json"], None);
        let d: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if d["state"] == "Stable"
            && d["members"][0]["assignment"]
                .as_array()
                .is_some_and(|a| a.len() == 2)
        {
            break d;
        }
        assert!(Instant::now() < deadline, "the member never showed up: {d}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(d["members"].as_array().unwrap().len(), 1);
    assert_eq!(d["members"][0]["client_id"], "riffle-cli");
    // Time for its first fetch (which waits at most 500 ms) to print the two records.
    std::thread::sleep(Duration::from_secs(2));
    let human = riffle_ok(&addr, &["group", "describe", "watchers"], None);
    assert!(
        human.contains("state Stable") && human.contains("1 member"),
        "{human}"
    );

    // Ctrl-C: the member commits what it printed and leaves.
    consumer.signal(libc::SIGINT);
    let out = consumer.wait_ok(Duration::from_secs(20));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "x\ny\n");
    let d = riffle_json(&addr, &["group", "describe", "watchers"], None);
    assert_eq!(d["state"], "Empty", "{d}");
    let p1 = d["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["partition"] == 1)
        .cloned();
    assert_eq!(
        p1.map(|o| (o["committed_offset"].clone(), o["lag"].clone())),
        Some((2.into(), 0.into()))
    );
}

#[test]
fn cluster_info_names_the_cluster_its_controller_and_brokers() {
    let broker = Broker::start();
    let addr = broker.addr();
    let info = riffle_json(&addr, &["cluster", "info"], None);
    let brokers = info["brokers"].as_array().expect("brokers");
    assert_eq!(brokers.len(), 1, "{info}");
    assert_eq!(
        format!(
            "{}:{}",
            brokers[0]["host"].as_str().unwrap(),
            brokers[0]["port"]
        ),
        addr
    );
    assert_eq!(info["controller_id"], brokers[0]["node_id"]);
    assert!(
        info["cluster_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{info}"
    );
    let human = riffle_ok(&addr, &["cluster", "info"], None);
    assert!(
        human.starts_with("cluster id: ") && human.contains("controller: "),
        "{human}"
    );
}
