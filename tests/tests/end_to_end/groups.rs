//! Classic consumer groups with real clients: confluent-kafka, kcat (librdkafka 2.0.2, which only
//! runs its group consumer when JoinGroup v0 is advertised), kafka-python and KafkaJS join,
//! split partitions, commit, rebalance on leave and on member failure, and find their committed
//! offsets again after restarts and kill -9. AdminClient/admin list, describe and delete groups.

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use riffle_tests::{
    js_dir, kafka, kcat_bin, node_bin, python_bin, python_ok, python_script, run_ok, scratch_dir,
    Background, Broker, BrokerOptions,
};

/// Joining an empty group waits group_initial_rebalance_delay_ms (Kafka's default 3000) for
/// more members; the tests shorten it, except the kcat one, which keeps every default.
const GROUP_CONFIG: &str = "group_initial_rebalance_delay_ms = 200\n";
const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

fn group_broker(smp: usize) -> Broker {
    Broker::start_with(BrokerOptions {
        smp,
        config_toml: Some(GROUP_CONFIG.to_string()),
        ..Default::default()
    })
}

#[test]
fn confluent_group_splits_partitions_rebalances_on_leave_and_resumes_at_committed_offsets() {
    let broker = group_broker(1);
    let topic = "groups-confluent";
    kafka::create_topic(&broker.addr(), topic, 8);
    python_ok(
        "confluent_group.py",
        &[&broker.addr(), topic, "8", "groups-confluent-group"],
        CLIENT_TIMEOUT,
    );
}

#[test]
fn confluent_group_member_killed_with_sigkill_is_dropped_after_its_session_timeout() {
    let broker = group_broker(1);
    let topic = "groups-failover";
    kafka::create_topic(&broker.addr(), topic, 8);
    python_ok(
        "confluent_group_failover.py",
        &[&broker.addr(), topic, "8", "groups-failover-group"],
        CLIENT_TIMEOUT,
    );
}

#[test]
fn confluent_group_offsets_of_a_deleted_topic_do_not_carry_over_to_a_recreated_one() {
    let broker = group_broker(1);
    python_ok(
        "confluent_group_topic_recreate.py",
        &[&broker.addr(), "groups-recreate", "groups-recreate-group"],
        CLIENT_TIMEOUT,
    );
}

#[test]
fn confluent_and_kafka_python_in_one_group_agree_on_the_assignor_both_offer() {
    let broker = group_broker(1);
    let topic = "groups-mixed";
    kafka::create_topic(&broker.addr(), topic, 8);
    python_ok(
        "mixed_clients_group.py",
        &[&broker.addr(), topic, "8", "groups-mixed-group"],
        CLIENT_TIMEOUT,
    );
}

/// Members join and leave every few hundred milliseconds while a producer writes: the group
/// never gets stuck, loses no message, and its offsets reach the log ends once the churn stops.
#[test]
fn confluent_group_under_membership_churn_loses_nothing_and_settles() {
    let broker = group_broker(1);
    let topic = "groups-churn";
    kafka::create_topic(&broker.addr(), topic, 12);
    python_ok(
        "confluent_group_churn.py",
        &[&broker.addr(), topic, "12", "groups-churn-group", "1"],
        CLIENT_TIMEOUT,
    );
}

/// KIP-345: a static member (group.instance.id) that restarts within its session timeout takes
/// its partitions back without a rebalance of the other members.
#[test]
fn confluent_static_member_restart_does_not_rebalance_the_group() {
    let broker = group_broker(1);
    let topic = "groups-static";
    kafka::create_topic(&broker.addr(), topic, 8);
    python_ok(
        "confluent_group_static.py",
        &[&broker.addr(), topic, "8", "groups-static-group"],
        CLIENT_TIMEOUT,
    );
}

/// A consumer keeps running while the broker is interrupted by `interrupt` and started again on
/// the same data dir: it rejoins the group and reads what is produced afterwards, without
/// re-reading what it had committed (synchronously) before.
fn consumer_rides_through_a_broker_restart(topic: &str, smp: usize, interrupt: fn(&mut Broker)) {
    let mut broker = group_broker(smp);
    kafka::create_topic(&broker.addr(), topic, 8);
    let scratch = scratch_dir("riffle-groups-restart-");
    let ready = scratch.path().join("ready");
    let restarted = scratch.path().join("restarted");
    let consumer = Background::spawn(
        Command::new(python_bin())
            .arg("-u")
            .arg(python_script("confluent_group_restart.py"))
            .args([&broker.addr(), topic, "8", &format!("{topic}-group")])
            .arg(&ready)
            .arg(&restarted),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        assert!(
            Instant::now() < deadline,
            "the consumer did not commit its first messages within 60 s"
        );
        thread::sleep(Duration::from_millis(20));
    }
    interrupt(&mut broker);
    broker.restart();
    std::fs::write(&restarted, b"").expect("tell the consumer the broker is back");
    consumer.wait_ok(CLIENT_TIMEOUT);
}

#[test]
fn confluent_group_consumer_running_across_a_sigterm_restart_resumes_at_committed_offsets() {
    consumer_rides_through_a_broker_restart("groups-sigterm", 1, |broker| {
        let status = broker.stop();
        assert!(
            status.success(),
            "riffle exited with {status} after SIGTERM\n{}",
            broker.log_tail()
        );
    });
}

#[test]
fn smp2_confluent_group_consumer_running_across_a_kill9_resumes_at_committed_offsets() {
    consumer_rides_through_a_broker_restart("groups-kill9", 2, Broker::kill9);
}

/// `kcat -G GROUP -e TOPIC` lines printed as "partition offset key value".
fn kcat_group_consume(broker: &Broker, group: &str, topic: &str, from_beginning: bool) -> String {
    let mut cmd = Command::new(kcat_bin());
    cmd.args(["-b", &broker.addr(), "-G", group, "-e", "-q"])
        .args(["-f", "%p %o %k %s\\n"]);
    if from_beginning {
        cmd.args(["-o", "beginning"]);
    }
    cmd.arg(topic);
    let out = run_ok(&mut cmd, None, Duration::from_secs(60));
    String::from_utf8(out.stdout).expect("kcat prints UTF-8")
}

fn kcat_produce(broker: &Broker, topic: &str, keys: std::ops::Range<usize>) {
    let input: String = keys
        .map(|i| format!("key-{i:05}\tvalue-{i:05}\n"))
        .collect();
    run_ok(
        Command::new(kcat_bin()).args(["-P", "-b", &broker.addr(), "-t", topic, "-K", "\t"]),
        Some(input.into_bytes()),
        Duration::from_secs(60),
    );
}

/// Checks kcat's output holds exactly the messages with indexes `want`, each once, with
/// consecutive offsets per partition starting at `start[partition]` (0 if absent); returns the
/// next offset of every partition read.
fn check_kcat_output(
    stdout: &str,
    want: std::ops::Range<usize>,
    start: &BTreeMap<i64, i64>,
) -> BTreeMap<i64, i64> {
    let mut next = start.clone();
    let mut seen: HashMap<usize, (i64, i64)> = HashMap::new();
    for line in stdout.lines().filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 4, "kcat line {line:?}");
        let partition: i64 = fields[0].parse().expect("partition");
        let offset: i64 = fields[1].parse().expect("offset");
        let i: usize = fields[2]
            .strip_prefix("key-")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected key in {line:?}"));
        assert_eq!(fields[3], format!("value-{i:05}"), "value of {line:?}");
        assert!(
            want.contains(&i),
            "kcat read key-{i:05} (partition {partition} offset {offset}), want only {want:?}: \
             the group did not resume at its committed offsets"
        );
        if let Some(prev) = seen.insert(i, (partition, offset)) {
            panic!("key-{i:05} read twice: at {prev:?} and at ({partition}, {offset})");
        }
        let expected = next.entry(partition).or_insert(0);
        assert_eq!(
            offset, *expected,
            "partition {partition}: offset {offset} where {expected} was next"
        );
        *expected += 1;
    }
    assert_eq!(
        seen.len(),
        want.len(),
        "kcat -G read {} of the {} messages {want:?}",
        seen.len(),
        want.len()
    );
    next
}

/// kcat's balanced consumer, with every group setting at its default (3 s initial rebalance
/// delay, librdkafka's 45 s session timeout): it consumes the whole topic, commits on exit, and
/// a second run in the same group reads only what was produced after the first.
#[test]
fn kcat_balanced_consumer_reads_every_partition_and_resumes_at_committed_offsets_with_defaults() {
    let broker = Broker::start();
    let topic = "groups-kcat";
    let group = "groups-kcat-group";
    kafka::create_topic(&broker.addr(), topic, 8);
    kcat_produce(&broker, topic, 0..2000);
    let first = kcat_group_consume(&broker, group, topic, true);
    let next = check_kcat_output(&first, 0..2000, &BTreeMap::new());
    assert_eq!(
        next.len(),
        8,
        "2,000 keyed messages land on all 8 partitions and one member reads them all: {next:?}"
    );
    kcat_produce(&broker, topic, 2000..2500);
    let second = kcat_group_consume(&broker, group, topic, false);
    check_kcat_output(&second, 2000..2500, &next);
}

#[test]
fn kafka_python_group_offsets_survive_a_graceful_restart() {
    let mut broker = group_broker(1);
    let topic = "groups-kafka-python";
    kafka::create_topic(&broker.addr(), topic, 4);
    let addr = broker.addr();
    let args = [addr.as_str(), topic, "4", "groups-kafka-python-group"];
    python_ok(
        "kafka_python_group.py",
        &[&args[..], &["first", "3000"]].concat(),
        CLIENT_TIMEOUT,
    );
    let status = broker.stop();
    assert!(
        status.success(),
        "riffle exited with {status} after SIGTERM\n{}",
        broker.log_tail()
    );
    broker.restart();
    python_ok(
        "kafka_python_group.py",
        &[&args[..], &["resume", "600"]].concat(),
        CLIENT_TIMEOUT,
    );
}

#[test]
fn kafka_python_group_offsets_survive_kill9_right_after_the_commit_is_acknowledged() {
    let mut broker = group_broker(1);
    let topic = "groups-kafka-python-kill9";
    kafka::create_topic(&broker.addr(), topic, 4);
    let addr = broker.addr();
    let args = [addr.as_str(), topic, "4", "groups-kafka-python-kill9-group"];
    // The script exits as soon as its commit() returns; the broker is killed right after.
    python_ok(
        "kafka_python_group.py",
        &[&args[..], &["first", "3000"]].concat(),
        CLIENT_TIMEOUT,
    );
    broker.kill9();
    broker.restart();
    python_ok(
        "kafka_python_group.py",
        &[&args[..], &["resume", "600"]].concat(),
        CLIENT_TIMEOUT,
    );
}

#[test]
fn kafkajs_group_consumes_everything_once_commits_and_resumes() {
    let broker = group_broker(1);
    let topic = "groups-kafkajs";
    kafka::create_topic(&broker.addr(), topic, 8);
    run_ok(
        Command::new(node_bin())
            .current_dir(js_dir())
            .arg("kafkajs_group.js")
            .args([&broker.addr(), topic, "8", "groups-kafkajs-group", "4000"]),
        None,
        Duration::from_secs(110),
    );
}

/// The broker's stderr without the ANSI colours tracing puts around field names.
fn plain_log(broker: &Broker) -> String {
    let log = broker.stderr_log();
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skips the escape sequence up to its final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// How many groups each shard loaded at the broker's last start ("loaded consumer groups").
fn groups_loaded_per_shard(broker: &Broker) -> BTreeMap<usize, usize> {
    let log = plain_log(broker);
    let last_start = log
        .rfind("---- riffle-tests: start #")
        .expect("the harness marks each start");
    let field = |line: &str, name: &str| -> usize {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
    };
    log[last_start..]
        .lines()
        .filter(|l| l.contains("loaded consumer groups"))
        .map(|l| (field(l, "shard="), field(l, "groups=")))
        .collect()
}

/// Six groups spread over the coordinator shards of --smp 2; each consumes and commits. After a
/// restart both shards load their groups back and every group resumes at its offsets, and so
/// it does after a restart with one shard, which then owns every group.
#[test]
fn smp2_six_groups_on_both_coordinator_shards_consume_commit_and_resume_after_restarts() {
    let mut broker = group_broker(2);
    let topic = "groups-smp2";
    kafka::create_topic(&broker.addr(), topic, 8);
    let groups: Vec<String> = (0..6).map(|n| format!("groups-smp2-{n}")).collect();
    let addr = broker.addr();
    let mut args: Vec<&str> = vec![&addr, topic, "8"];
    args.extend(groups.iter().map(String::as_str));
    python_ok("confluent_groups_many.py", &args, CLIENT_TIMEOUT);

    assert!(broker.stop().success(), "SIGTERM\n{}", broker.log_tail());
    broker.restart();
    let loaded = groups_loaded_per_shard(&broker);
    assert_eq!(
        loaded.values().sum::<usize>(),
        groups.len(),
        "groups loaded back per shard: {loaded:?}\n{}",
        broker.log_tail()
    );
    assert_eq!(
        loaded.keys().copied().collect::<Vec<_>>(),
        vec![0, 1],
        "both shards coordinate some of the six groups: {loaded:?}"
    );
    python_ok("confluent_groups_many.py", &args, CLIENT_TIMEOUT);

    assert!(broker.stop().success(), "SIGTERM\n{}", broker.log_tail());
    broker.restart_with_smp(1);
    let loaded = groups_loaded_per_shard(&broker);
    assert_eq!(
        loaded,
        BTreeMap::from([(0, groups.len())]),
        "one shard loads every group\n{}",
        broker.log_tail()
    );
    python_ok("confluent_groups_many.py", &args, CLIENT_TIMEOUT);
}

#[test]
fn kafka_python_admin_deletes_group_offsets_except_for_topics_the_members_subscribe_to() {
    let broker = group_broker(1);
    let topic = "groups-offset-delete";
    kafka::create_topic(&broker.addr(), topic, 2);
    python_ok(
        "mixed_offset_delete.py",
        &[&broker.addr(), topic, "groups-offset-delete-group"],
        CLIENT_TIMEOUT,
    );
}
