//! kcat (librdkafka 2.0.2, Debian's package): keyed produce with headers, consume back, metadata.

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::time::Duration;

use riffle_tests::{kafka, kcat_bin, run_ok, Broker};
use serde_json::Value;

const MESSAGES: usize = 10_000;
const PARTITIONS: i32 = 8;
/// Produce runs; each sends its own header values, so headers differ between messages.
const RUNS: usize = 4;
const KCAT_TIMEOUT: Duration = Duration::from_secs(90);

fn key(i: usize) -> String {
    format!("key-{i:05}")
}

fn value(i: usize) -> String {
    format!("value-{i:05}-{}", "x".repeat(i % 97))
}

fn headers(run: usize) -> Vec<(String, String)> {
    vec![
        ("run".to_string(), run.to_string()),
        ("origin".to_string(), format!("kcat-test-{run}")),
    ]
}

#[test]
fn kcat_round_trip_keeps_keys_values_headers_and_partition_order() {
    let broker = Broker::start();
    let topic = "kcat-roundtrip";
    kafka::create_topic(&broker.addr(), topic, PARTITIONS);

    let per_run = MESSAGES / RUNS;
    for run in 0..RUNS {
        let mut input = String::new();
        for i in run * per_run..(run + 1) * per_run {
            input.push_str(&format!("{}\t{}\n", key(i), value(i)));
        }
        let mut cmd = Command::new(kcat_bin());
        cmd.args(["-P", "-b", &broker.addr(), "-t", topic, "-K", "\t"])
            .args(["-X", "acks=all", "-X", "linger.ms=5"]);
        for (k, v) in headers(run) {
            cmd.arg("-H").arg(format!("{k}={v}"));
        }
        run_ok(&mut cmd, Some(input.into_bytes()), KCAT_TIMEOUT);
    }

    let out = run_ok(
        Command::new(kcat_bin()).args([
            "-C",
            "-b",
            &broker.addr(),
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-J",
            "-q",
        ]),
        None,
        KCAT_TIMEOUT,
    );
    let stdout = String::from_utf8(out.stdout).expect("kcat -J prints UTF-8");

    // partition -> [(offset, index)]
    let mut by_partition: BTreeMap<i64, Vec<(i64, usize)>> = BTreeMap::new();
    let mut seen: HashMap<usize, i64> = HashMap::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let msg: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("kcat -J line is not JSON ({e}): {line}"));
        let k = msg["key"].as_str().expect("key is a string");
        let i: usize = k
            .strip_prefix("key-")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected key {k:?}"));
        assert!(i < MESSAGES, "unexpected key {k:?}");
        assert_eq!(
            msg["payload"].as_str(),
            Some(value(i).as_str()),
            "value of {k}"
        );
        let run = i / per_run;
        let want: Vec<Value> = headers(run)
            .into_iter()
            .flat_map(|(k, v)| [Value::String(k), Value::String(v)])
            .collect();
        assert_eq!(msg["headers"], Value::Array(want), "headers of {k}: {line}");
        let partition = msg["partition"].as_i64().expect("partition");
        let offset = msg["offset"].as_i64().expect("offset");
        assert!(
            (0..i64::from(PARTITIONS)).contains(&partition),
            "partition {partition}"
        );
        if let Some(prev) = seen.insert(i, partition) {
            panic!("{k} consumed twice (partitions {prev} and {partition})");
        }
        by_partition.entry(partition).or_default().push((offset, i));
    }
    assert_eq!(
        seen.len(),
        MESSAGES,
        "consumed {} of {MESSAGES} messages",
        seen.len()
    );
    assert_eq!(
        by_partition.len(),
        PARTITIONS as usize,
        "10,000 random keys should land on all partitions: {:?}",
        by_partition.keys().collect::<Vec<_>>()
    );
    for (partition, records) in &by_partition {
        for (n, (offset, _)) in records.iter().enumerate() {
            assert_eq!(
                *offset, n as i64,
                "partition {partition}: offsets must be consecutive from 0 in consume order"
            );
        }
        for pair in records.windows(2) {
            assert!(
                pair[0].1 < pair[1].1,
                "partition {partition}: key-{} at offset {} came before key-{} at offset {} \
                 but was produced after it",
                pair[0].1,
                pair[0].0,
                pair[1].1,
                pair[1].0
            );
        }
    }
}

#[test]
fn kcat_metadata_lists_topic_partitions_and_broker() {
    let broker = Broker::start();
    let topic = "kcat-metadata";
    kafka::create_topic(&broker.addr(), topic, PARTITIONS);
    let out = run_ok(
        Command::new(kcat_bin()).args(["-L", "-b", &broker.addr(), "-J"]),
        None,
        Duration::from_secs(30),
    );
    let md: Value = serde_json::from_slice(&out.stdout).expect("kcat -L -J prints JSON");
    let brokers = md["brokers"].as_array().expect("brokers array");
    assert_eq!(brokers.len(), 1, "one broker: {md}");
    assert_eq!(
        brokers[0]["name"].as_str(),
        Some(broker.addr().as_str()),
        "the broker advertises its listener: {md}"
    );
    assert_eq!(brokers[0]["id"].as_i64(), Some(0), "node id 0: {md}");
    let topics = md["topics"].as_array().expect("topics array");
    let t = topics
        .iter()
        .find(|t| t["topic"].as_str() == Some(topic))
        .unwrap_or_else(|| panic!("{topic} missing from kcat -L: {md}"));
    let partitions = t["partitions"].as_array().expect("partitions array");
    assert_eq!(partitions.len(), PARTITIONS as usize, "{t}");
    let mut ids: Vec<i64> = partitions
        .iter()
        .map(|p| p["partition"].as_i64().expect("partition id"))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..i64::from(PARTITIONS)).collect::<Vec<_>>());
    for p in partitions {
        assert_eq!(p["leader"].as_i64(), Some(0), "leader of {p}");
    }
}

#[test]
fn kcat_produce_to_a_missing_topic_auto_creates_it_with_one_partition() {
    let broker = Broker::start();
    let topic = "kcat-auto-created";
    run_ok(
        Command::new(kcat_bin()).args(["-P", "-b", &broker.addr(), "-t", topic]),
        Some(b"one\ntwo\nthree\n".to_vec()),
        KCAT_TIMEOUT,
    );
    let out = run_ok(
        Command::new(kcat_bin()).args([
            "-C",
            "-b",
            &broker.addr(),
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%p %o %s\\n",
        ]),
        None,
        KCAT_TIMEOUT,
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "0 0 one\n0 1 two\n0 2 three\n"
    );
    let md = kafka::metadata(&broker.addr()).expect("Metadata");
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_deref() == Some(topic))
        .expect("the auto-created topic is listed");
    assert_eq!(t.partitions.len(), 1, "default partition count");
}

#[test]
fn kcat_consumes_from_a_relative_offset_and_stops_at_the_end() {
    let broker = Broker::start();
    let topic = "kcat-relative";
    kafka::create_topic(&broker.addr(), topic, 1);
    let input: String = (0..100).map(|i| format!("m{i:03}\n")).collect();
    run_ok(
        Command::new(kcat_bin()).args(["-P", "-b", &broker.addr(), "-t", topic, "-p", "0"]),
        Some(input.into_bytes()),
        KCAT_TIMEOUT,
    );
    for (offset, want_first) in [("-10", 90), ("95", 95), ("beginning", 0)] {
        let out = run_ok(
            Command::new(kcat_bin()).args([
                "-C",
                "-b",
                &broker.addr(),
                "-t",
                topic,
                "-p",
                "0",
                "-o",
                offset,
                "-e",
                "-q",
                "-f",
                "%o %s\\n",
            ]),
            None,
            KCAT_TIMEOUT,
        );
        let want: String = (want_first..100)
            .map(|i| format!("{i} m{i:03}\n"))
            .collect();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            want,
            "kcat -o {offset}"
        );
    }
}
