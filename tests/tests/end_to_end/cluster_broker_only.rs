//! A broker-only node (`--roles broker`) beside three controller-only voters: it registers with
//! the quorum, follows the metadata log from the leader (snapshot, then records), is assigned
//! the partitions and serves them; a topic that confluent-kafka creates through it is committed
//! by every voter, and clients produce and consume through it. The leader lists it as an
//! observer. After the leader's kill -9 it follows the new leader and changes through it commit
//! again; silent, it is fenced, and restarted it catches up and is unfenced.

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use riffle_tests::{free_port, kafka, python_ok, riffle_bin, run_ok, Broker, BrokerOptions};
use serde_json::Value;

use crate::cluster::{
    agreed_leader, brokers_become, cluster_doc, describe_quorum, kcat_sees, COMMAND_TIMEOUT,
    FAST_TICKS_TOML, LEADER_TIMEOUT,
};

/// The broker-only node's id (the voters are 1-3).
const BROKER_ONLY_ID: u64 = 4;

fn start(quorum: &str, node_id: u64, roles: &str) -> Broker {
    Broker::start_with(BrokerOptions {
        extra_args: vec![
            "--node-id".into(),
            node_id.to_string(),
            "--controller-quorum".into(),
            quorum.into(),
            "--roles".into(),
            roles.into(),
        ],
        config_toml: Some(FAST_TICKS_TOML.into()),
        ..BrokerOptions::default()
    })
}

/// Waits until `done` holds for `node`'s `/v1/cluster` quorum document.
fn quorum_becomes(node: &Broker, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + LEADER_TIMEOUT;
    loop {
        let quorum = cluster_doc(node)["quorum"].clone();
        if done(&quorum) {
            return quorum;
        }
        assert!(
            Instant::now() < deadline,
            "{}: not {what} within {LEADER_TIMEOUT:?}: {quorum}",
            node.addr()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn lists_observer(quorum: &Value, node_id: u64) -> bool {
    quorum["observers"]
        .as_array()
        .is_some_and(|o| o.iter().any(|o| o["node_id"] == node_id))
}

/// CreateTopics through `node` until it succeeds; TOPIC_ALREADY_EXISTS after a retriable
/// refusal means the earlier attempt committed, which is success too.
fn create_topic_retrying(node: &Broker, name: &str, partitions: i32) {
    let deadline = Instant::now() + LEADER_TIMEOUT;
    loop {
        let (code, message) = kafka::try_create_topic(&node.addr(), name, partitions, 1, &[]);
        if code == 0 || code == 36 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "CreateTopics {name} through {}: error {code} {message:?}",
            node.addr()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_broker_only_node_follows_the_quorum_serves_its_partitions_and_survives_a_leader_kill() {
    let quorum = (1..=3)
        .map(|id| format!("{id}@127.0.0.1:{}", free_port()))
        .collect::<Vec<_>>()
        .join(",");
    let mut voters: Vec<Broker> = (1..=3).map(|id| start(&quorum, id, "controller")).collect();
    let mut broker = start(&quorum, BROKER_ONLY_ID, "broker");
    let all: Vec<&Broker> = voters.iter().collect();
    let (leader, _) = agreed_leader(&all, &[1, 2, 3]);
    let leader_node = &voters[leader as usize - 1];
    assert_eq!(cluster_doc(&broker)["roles"], "broker");
    // It registers, and its fetches keep it unfenced, as the leader and itself see it.
    brokers_become(leader_node, &[(4, false)]);
    brokers_become(&broker, &[(4, false)]);

    python_ok(
        "confluent_broker_only.py",
        &[&broker.addr(), "via-broker", "3", "300", "4"],
        Duration::from_secs(120),
    );
    for voter in &voters {
        quorum_becomes(voter, "holding the topic", |q| q["topic_count"] == 1);
    }
    // The leader lists it as an observer that applied everything; the broker-only node shows
    // the leader's view (DescribeQuorum and `riffle cluster info`).
    quorum_becomes(leader_node, "listing observer 4", |q| {
        q["observers"]
            .as_array()
            .is_some_and(|o| o.iter().any(|o| o["node_id"] == 4 && o["lag"] == 0))
    });
    // A follower shows it too, from the leader's view.
    let follower = &voters[leader as usize % 3];
    quorum_becomes(follower, "listing observer 4 from the leader's view", |q| {
        lists_observer(q, BROKER_ONLY_ID)
    });
    let answer = describe_quorum(&broker);
    let partition = &answer.topics[0].partitions[0];
    assert_eq!(partition.leader_id, leader as i32, "{answer:?}");
    let voter_ids: Vec<i32> = partition
        .current_voters
        .iter()
        .map(|v| v.replica_id)
        .collect();
    assert_eq!(voter_ids, vec![1, 2, 3], "{answer:?}");
    let observer_ids: Vec<i32> = partition.observers.iter().map(|o| o.replica_id).collect();
    assert_eq!(observer_ids, vec![4], "{answer:?}");
    let out = run_ok(
        Command::new(riffle_bin()).args([
            "cluster",
            "info",
            "--brokers",
            &broker.addr(),
            "--admin",
            &broker.admin_addr(),
            "--json",
        ]),
        None,
        COMMAND_TIMEOUT,
    );
    let info: Value = serde_json::from_slice(&out.stdout).expect("cluster info --json");
    assert_eq!(info["quorum"]["leader_id"], leader, "{info}");
    assert!(lists_observer(&info["quorum"], BROKER_ONLY_ID), "{info}");

    voters[leader as usize - 1].kill9();
    let survivors: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let alive: Vec<&Broker> = survivors
        .iter()
        .map(|id| &voters[*id as usize - 1])
        .collect();
    let (new_leader, _) = agreed_leader(&alive, &survivors);
    quorum_becomes(&broker, "following the new leader", |q| {
        q["leader_id"] == new_leader
    });
    create_topic_retrying(&broker, "after-failover", 2);
    kcat_sees(&broker, "after-failover", Some(2));
    for voter in &alive {
        quorum_becomes(voter, "holding both topics", |q| q["topic_count"] == 2);
    }

    // Silent, it is fenced; restarted (its image rebuilt from the quorum), it is unfenced and
    // serves both topics.
    let new_leader_node = &voters[new_leader as usize - 1];
    broker.kill9();
    brokers_become(new_leader_node, &[(4, true)]);
    broker.restart();
    brokers_become(new_leader_node, &[(4, false)]);
    kcat_sees(&broker, "via-broker", Some(3));
    kcat_sees(&broker, "after-failover", Some(2));
}
