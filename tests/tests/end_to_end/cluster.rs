//! The controller quorum against real processes: three combined nodes on loopback ports elect
//! a leader, register their brokers, create and delete topics sent to any node (kcat sees them
//! on all three), elect another leader within seconds of the leader's kill -9 and fence its
//! broker, and take the killed node back when it restarts (it catches up on what it missed);
//! with two of three gone a change is refused with REQUEST_TIMED_OUT (retriable); the quorum
//! as `/v1/cluster` and `riffle cluster info --admin` show it; the controller port
//! closes a connection that is not a controller of this cluster. Partitions are led by one
//! broker each: clients bootstrapped at any node reach them, Metadata lists every live broker,
//! a fenced broker's partitions are leaderless until it is back; DescribeQuorum and
//! DescribeCluster name the active controller; a controller-only node votes but is no broker.
//! Raft ticks are short here (50 ms) so that elections take well under a second.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use riffle_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use riffle_protocol::messages::describe_cluster_response::DescribeClusterResponse;
use riffle_protocol::messages::describe_quorum_request::{
    DescribeQuorumRequest, PartitionData, TopicData,
};
use riffle_protocol::messages::describe_quorum_response::DescribeQuorumResponse;
use riffle_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use riffle_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use riffle_protocol::messages::{
    FetchRequest, FetchResponse, MetadataResponse, ProduceRequest, ProduceResponse,
};
use riffle_protocol::record_batch::{Compression, RecordBatchBuilder};
use riffle_protocol::{error_code, Records};
use riffle_tests::{
    free_port, http, kafka, kcat_bin, python_ok, riffle_bin, run_ok, scratch_dir, Broker,
    BrokerOptions,
};
use serde_json::Value;

/// Raft clock of the test clusters: 50 ms ticks, heartbeats every 2, elections after 10-20.
/// A broker silent for 2 s is fenced; a change not committed in 1.5 s is refused. A snapshot
/// every 20 entries: a node that misses a few dozen changes catches up by snapshot.
pub(crate) const FAST_TICKS_TOML: &str = "controller_tick_ms = 50\ncontroller_heartbeat_tick = 2\n\
    controller_election_tick = 10\nbroker_session_timeout_ms = 2000\n\
    controller_proposal_timeout_ms = 1500\ncontroller_snapshot_interval_entries = 20\n";
/// How long a cluster may take to agree on a leader (elections take 0.5-1 s here; the rest is
/// slack for a loaded CI machine).
pub(crate) const LEADER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one CLI command may take.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Three combined nodes, ids 1-3, each with its own Kafka, admin and controller port.
pub(crate) fn start_cluster() -> Vec<Broker> {
    start_cluster_with(None)
}

/// Three combined nodes; node 1 on `node1_data_dir` when given.
fn start_cluster_with(node1_data_dir: Option<&Path>) -> Vec<Broker> {
    start_nodes(&["broker,controller"; 3], node1_data_dir)
}

/// Three voters, ids 1-3, with the given roles; node 1 on `node1_data_dir` when given.
fn start_nodes(roles: &[&str; 3], node1_data_dir: Option<&Path>) -> Vec<Broker> {
    let controller_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let quorum = controller_ports
        .iter()
        .enumerate()
        .map(|(i, port)| format!("{}@127.0.0.1:{port}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    (1..=3)
        .map(|node_id| {
            Broker::start_with(BrokerOptions {
                extra_args: vec![
                    "--node-id".into(),
                    node_id.to_string(),
                    "--controller-quorum".into(),
                    quorum.clone(),
                    "--roles".into(),
                    roles[node_id - 1].into(),
                    "--broker-rack".into(),
                    format!("rack-{node_id}"),
                ],
                config_toml: Some(FAST_TICKS_TOML.into()),
                data_dir: node1_data_dir
                    .filter(|_| node_id == 1)
                    .map(Path::to_path_buf),
                ..BrokerOptions::default()
            })
        })
        .collect()
}

/// The `/v1/cluster` document of `node`.
pub(crate) fn cluster_doc(node: &Broker) -> Value {
    let response = http::get(&node.admin_addr(), "/v1/cluster")
        .unwrap_or_else(|e| panic!("GET /v1/cluster: {e}"));
    assert_eq!(response.status, 200, "{}", response.body);
    serde_json::from_str(&response.body).expect("/v1/cluster is JSON")
}

/// Waits until every one of `nodes` names the same leader, one of `candidates`; returns the
/// leader's id and the term.
pub(crate) fn agreed_leader(nodes: &[&Broker], candidates: &[u64]) -> (u64, u64) {
    let deadline = Instant::now() + LEADER_TIMEOUT;
    let mut last = Vec::new();
    while Instant::now() < deadline {
        last = nodes
            .iter()
            .map(|n| cluster_doc(n)["quorum"].clone())
            .collect();
        let leaders: Vec<Option<u64>> = last.iter().map(|q| q["leader_id"].as_u64()).collect();
        if let Some(Some(leader)) = leaders.first() {
            let terms: Vec<u64> = last.iter().filter_map(|q| q["term"].as_u64()).collect();
            if leaders.iter().all(|l| *l == Some(*leader))
                && candidates.contains(leader)
                && terms.iter().all(|t| *t == terms[0])
            {
                return (*leader, terms[0]);
            }
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("no agreed leader among {candidates:?} within {LEADER_TIMEOUT:?}: {last:?}");
}

/// Waits until the leader sees every voter caught up (lag 0).
pub(crate) fn all_voters_caught_up(leader: &Broker) -> Value {
    let deadline = Instant::now() + LEADER_TIMEOUT;
    loop {
        let quorum = cluster_doc(leader)["quorum"].clone();
        let voters = quorum["voters"].as_array().cloned().unwrap_or_default();
        if voters.len() == 3 && voters.iter().all(|v| v["lag"].as_u64() == Some(0)) {
            return quorum;
        }
        assert!(
            Instant::now() < deadline,
            "voters not caught up within {LEADER_TIMEOUT:?}: {quorum}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `node` sees the registered brokers as `expected` (id, fenced).
pub(crate) fn brokers_become(node: &Broker, expected: &[(i64, bool)]) {
    let deadline = Instant::now() + LEADER_TIMEOUT;
    loop {
        let quorum = cluster_doc(node)["quorum"].clone();
        let brokers: Vec<(i64, bool)> = quorum["brokers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| (b["broker_id"].as_i64().unwrap_or(-1), b["fenced"] == true))
            .collect();
        if brokers == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "brokers not {expected:?} within {LEADER_TIMEOUT:?}: {quorum}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until kcat's metadata from `node` lists `topic` with `partitions` partitions, or
/// (with None) does not list it.
pub(crate) fn kcat_sees(node: &Broker, topic: &str, partitions: Option<usize>) {
    let deadline = Instant::now() + LEADER_TIMEOUT;
    let line = format!("topic \"{topic}\" with ");
    loop {
        let out = run_ok(
            Command::new(kcat_bin()).args(["-b", &node.addr(), "-L", "-m", "10"]),
            None,
            COMMAND_TIMEOUT,
        );
        let listing = String::from_utf8_lossy(&out.stdout).into_owned();
        let found = match partitions {
            Some(n) => listing.contains(&format!("{line}{n} partitions")),
            None => !listing.contains(&line),
        };
        if found {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {topic} not as {partitions:?} within {LEADER_TIMEOUT:?}:\n{listing}",
            node.addr()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `node`'s Metadata satisfies `done`; returns that Metadata.
fn metadata_becomes(
    node: &Broker,
    what: &str,
    done: impl Fn(&MetadataResponse) -> bool,
) -> MetadataResponse {
    let deadline = Instant::now() + LEADER_TIMEOUT;
    loop {
        let metadata = kafka::metadata(&node.addr()).expect("Metadata");
        if done(&metadata) {
            return metadata;
        }
        assert!(
            Instant::now() < deadline,
            "{}: not {what} within {LEADER_TIMEOUT:?}: {metadata:?}",
            node.addr()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// The broker ids a Metadata response lists.
fn broker_ids(metadata: &MetadataResponse) -> Vec<i32> {
    let mut ids: Vec<i32> = metadata.brokers.iter().map(|b| b.node_id).collect();
    ids.sort_unstable();
    ids
}

/// (leader, error code) of each partition of `topic`, in partition order.
fn leaders(metadata: &MetadataResponse, topic: &str) -> Vec<(i32, i16)> {
    let Some(t) = metadata
        .topics
        .iter()
        .find(|t| t.name.as_deref() == Some(topic))
    else {
        return Vec::new();
    };
    let mut partitions: Vec<_> = t.partitions.iter().collect();
    partitions.sort_by_key(|p| p.partition_index);
    partitions
        .iter()
        .map(|p| (p.leader_id, p.error_code))
        .collect()
}

/// Waits until kcat's Metadata from `node` lists `count` brokers.
fn kcat_lists_brokers(node: &Broker, count: usize) {
    let deadline = Instant::now() + LEADER_TIMEOUT;
    let wanted = format!(" {count} brokers:");
    loop {
        let out = run_ok(
            Command::new(kcat_bin()).args(["-b", &node.addr(), "-L", "-m", "10"]),
            None,
            COMMAND_TIMEOUT,
        );
        let listing = String::from_utf8_lossy(&out.stdout).into_owned();
        if listing.contains(&wanted) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: kcat does not list {count} brokers within {LEADER_TIMEOUT:?}:\n{listing}",
            node.addr()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn clients_bootstrapped_at_any_node_reach_every_partition_leader() {
    let nodes = start_cluster();
    let all: Vec<&Broker> = nodes.iter().collect();
    let (leader, _) = agreed_leader(&all, &[1, 2, 3]);
    brokers_become(
        &nodes[leader as usize - 1],
        &[(1, false), (2, false), (3, false)],
    );
    for node in &nodes {
        kcat_lists_brokers(node, 3);
    }
    kafka::create_topic(&nodes[1].addr(), "spread", 6);
    // Every node names the same leaders, spread over the brokers, with replicas and ISR.
    let expected = metadata_becomes(&nodes[0], "led everywhere", |m| {
        let l = leaders(m, "spread");
        l.len() == 6
            && l.iter()
                .all(|(id, code)| *id > 0 && *code == error_code::NONE)
    });
    let placed = leaders(&expected, "spread");
    for node in &nodes {
        let metadata = metadata_becomes(node, "as node 1", |m| leaders(m, "spread") == placed);
        assert_eq!(broker_ids(&metadata), vec![1, 2, 3]);
        for b in &metadata.brokers {
            assert_eq!(b.rack, Some(format!("rack-{}", b.node_id)), "{b:?}");
        }
        let topic = &metadata.topics[0];
        for p in &topic.partitions {
            assert_eq!(p.replica_nodes, vec![p.leader_id], "{p:?}");
            assert_eq!(p.isr_nodes, vec![p.leader_id], "{p:?}");
        }
    }

    python_ok(
        "confluent_cluster.py",
        &[
            &nodes[0].addr(),
            &nodes[2].addr(),
            "spread",
            "6",
            "600",
            "3",
        ],
        Duration::from_secs(120),
    );

    // A Produce sent to a broker that does not lead the partition is refused, naming the
    // leader and where it listens (KIP-951), and nothing is written there.
    let (partition, (owner, _)) = placed
        .iter()
        .enumerate()
        .find(|(_, (owner, _))| *owner != 1)
        .expect("a partition not led by node 1");
    let mut conn = kafka::Connection::connect(&nodes[0].addr()).expect("connect to node 1");
    let mut builder = RecordBatchBuilder::new(Compression::None, 1_700_000_000_000);
    builder.append(1_700_000_000_000, None, Some(b"misrouted"), &[]);
    let batch = builder.finish();
    let response: ProduceResponse = conn
        .request(
            11,
            &ProduceRequest {
                acks: -1,
                timeout_ms: 10_000,
                topic_data: vec![TopicProduceData {
                    name: "spread".into(),
                    partition_data: vec![PartitionProduceData {
                        index: partition as i32,
                        records: Some(Records::from_bytes(batch)),
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .expect("Produce v11");
    let answer = &response.responses[0].partition_responses[0];
    assert_eq!(answer.error_code, error_code::NOT_LEADER_OR_FOLLOWER);
    assert_eq!(answer.current_leader.leader_id, *owner, "{response:?}");
    let endpoint = response
        .node_endpoints
        .iter()
        .find(|e| e.node_id == *owner)
        .unwrap_or_else(|| panic!("the leader's endpoint: {response:?}"));
    assert_eq!(
        format!("{}:{}", endpoint.host, endpoint.port),
        nodes[*owner as usize - 1].addr()
    );
    // A Fetch v12 of it is refused alike, naming the leader, and nothing is read.
    let fetched: FetchResponse = conn
        .request(
            12,
            &FetchRequest {
                max_wait_ms: 100,
                max_bytes: 1 << 20,
                topics: vec![FetchTopic {
                    topic: "spread".into(),
                    partitions: vec![FetchPartition {
                        partition: partition as i32,
                        partition_max_bytes: 1 << 20,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .expect("Fetch v12");
    let answer = &fetched.responses[0].partitions[0];
    assert_eq!(answer.error_code, error_code::NOT_LEADER_OR_FOLLOWER);
    assert_eq!(answer.current_leader.leader_id, *owner, "{fetched:?}");
}

/// DescribeQuorum v2 of the metadata log, asked of `node`.
pub(crate) fn describe_quorum(node: &Broker) -> DescribeQuorumResponse {
    let mut conn = kafka::Connection::connect(&node.addr()).expect("connect");
    let request = DescribeQuorumRequest {
        topics: vec![TopicData {
            topic_name: "__cluster_metadata".into(),
            partitions: vec![PartitionData { partition_index: 0 }],
        }],
    };
    conn.request(2, &request).expect("DescribeQuorum v2")
}

#[test]
fn describe_quorum_and_describe_cluster_name_the_active_controller() {
    let nodes = start_cluster();
    let all: Vec<&Broker> = nodes.iter().collect();
    let (leader, term) = agreed_leader(&all, &[1, 2, 3]);
    let leader_node = &nodes[leader as usize - 1];
    all_voters_caught_up(leader_node);
    brokers_become(leader_node, &[(1, false), (2, false), (3, false)]);

    // kafka-python, bootstrapped at a follower, sees the leader, its epoch and the voters.
    let follower = &nodes[leader as usize % 3];
    python_ok(
        "kafka_python_quorum.py",
        &[&follower.addr(), &leader.to_string(), "1,2,3"],
        COMMAND_TIMEOUT,
    );

    // The leader knows every voter's log end offset and when it last heard from it.
    let deadline = Instant::now() + LEADER_TIMEOUT;
    let partition = loop {
        let answer = describe_quorum(leader_node);
        assert_eq!(answer.error_code, error_code::NONE, "{answer:?}");
        let partition = answer.topics[0].partitions[0].clone();
        let caught_up = partition.current_voters.iter().all(|v| {
            v.log_end_offset == partition.high_watermark && v.last_caught_up_timestamp > 0
        });
        if caught_up {
            let nodes: Vec<i32> = answer.nodes.iter().map(|n| n.node_id).collect();
            assert_eq!(nodes, vec![1, 2, 3], "{answer:?}");
            break partition;
        }
        assert!(
            Instant::now() < deadline,
            "voters not caught up: {answer:?}"
        );
        thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(partition.leader_id, leader as i32);
    assert_eq!(partition.leader_epoch as u64, term);
    // A follower answers with the leader's view (every voter's log end offset), as a Kafka
    // broker forwards DescribeQuorum to the active controller.
    let deadline = Instant::now() + LEADER_TIMEOUT;
    loop {
        let answer = describe_quorum(follower);
        let seen = &answer.topics[0].partitions[0];
        if seen.leader_id == leader as i32
            && seen.current_voters.len() == 3
            && seen.current_voters.iter().all(|v| v.log_end_offset >= 0)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a follower's DescribeQuorum lacks the leader's view: {answer:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
    for voter in &partition.current_voters {
        let is_leader = voter.replica_id == leader as i32;
        assert_eq!(voter.last_fetch_timestamp > 0, !is_leader, "{partition:?}");
    }
    let unknown = {
        let mut conn = kafka::Connection::connect(&leader_node.addr()).expect("connect");
        let request = DescribeQuorumRequest {
            topics: vec![TopicData {
                topic_name: "orders".into(),
                partitions: vec![PartitionData { partition_index: 0 }],
            }],
        };
        let answer: DescribeQuorumResponse = conn.request(2, &request).expect("DescribeQuorum");
        answer.topics[0].partitions[0].error_code
    };
    assert_eq!(unknown, error_code::UNKNOWN_TOPIC_OR_PARTITION);

    // DescribeCluster from every node names the quorum's leader as the controller.
    for node in &nodes {
        let mut conn = kafka::Connection::connect(&node.addr()).expect("connect");
        let answer: DescribeClusterResponse = conn
            .request(2, &DescribeClusterRequest::default())
            .expect("DescribeCluster v2");
        assert_eq!(answer.controller_id, leader as i32, "{answer:?}");
        let ids: Vec<i32> = answer.brokers.iter().map(|b| b.broker_id).collect();
        assert_eq!(ids, vec![1, 2, 3], "{answer:?}");
    }
}

#[test]
fn a_controller_only_node_votes_but_is_no_broker() {
    let nodes = start_nodes(
        &["broker,controller", "broker,controller", "controller"],
        None,
    );
    let all: Vec<&Broker> = nodes.iter().collect();
    agreed_leader(&all, &[1, 2, 3]);
    let controller_only = &nodes[2];
    assert_eq!(cluster_doc(controller_only)["roles"], "controller");
    // It never registers as a broker and serves no Kafka client.
    brokers_become(controller_only, &[(1, false), (2, false)]);
    assert!(
        TcpStream::connect(controller_only.addr()).is_err(),
        "a controller-only node has no Kafka listener"
    );
    // Topics go to the brokers only; clients are told of them and of a broker as controller.
    kafka::create_topic(&nodes[0].addr(), "on-brokers", 4);
    let metadata = metadata_becomes(&nodes[1], "placed on brokers 1 and 2", |m| {
        let l = leaders(m, "on-brokers");
        l.len() == 4 && l.iter().all(|(id, code)| [1, 2].contains(id) && *code == 0)
    });
    assert_eq!(broker_ids(&metadata), vec![1, 2]);
    assert!([1, 2].contains(&metadata.controller_id), "{metadata:?}");
    let quorum = describe_quorum(&nodes[0]);
    let voters: Vec<i32> = quorum.topics[0].partitions[0]
        .current_voters
        .iter()
        .map(|v| v.replica_id)
        .collect();
    assert_eq!(voters, vec![1, 2, 3], "{quorum:?}");
}

#[test]
fn quorum_elects_a_new_leader_after_kill_9_and_the_killed_node_rejoins() {
    let mut nodes = start_cluster();
    let all: Vec<&Broker> = nodes.iter().collect();
    let (leader, term) = agreed_leader(&all, &[1, 2, 3]);
    let leader_index = leader as usize - 1;
    let quorum = all_voters_caught_up(&nodes[leader_index]);
    assert_eq!(quorum["node_id"], leader, "{quorum}");
    brokers_become(&nodes[leader_index], &[(1, false), (2, false), (3, false)]);

    // Topics sent to a follower are committed by the quorum and served by every node.
    let follower = &nodes[leader_index % 3];
    kafka::create_topic(&follower.addr(), "orders", 3);
    kafka::create_topic(&follower.addr(), "doomed", 1);
    kafka::create_topic(&follower.addr(), "kept", 3);
    for node in &nodes {
        kcat_sees(node, "orders", Some(3));
        kcat_sees(node, "doomed", Some(1));
    }
    let (code, _) = kafka::try_create_topic(&nodes[leader_index].addr(), "orders", 1, 1, &[]);
    assert_eq!(code, 36, "TOPIC_ALREADY_EXISTS from any node");
    let deleted = run_ok(
        Command::new(riffle_bin()).args([
            "topic",
            "delete",
            "doomed",
            "--brokers",
            &nodes[(leader_index + 2) % 3].addr(),
        ]),
        None,
        COMMAND_TIMEOUT,
    );
    assert!(deleted.status.success());
    for node in &nodes {
        kcat_sees(node, "doomed", None);
    }

    // The CLI shows the same quorum, from the leader's admin listener.
    let leader_node = &nodes[leader_index];
    let out = run_ok(
        Command::new(riffle_bin()).args([
            "cluster",
            "info",
            "--brokers",
            &leader_node.addr(),
            "--admin",
            &leader_node.admin_addr(),
            "--json",
        ]),
        None,
        COMMAND_TIMEOUT,
    );
    let info: Value = serde_json::from_slice(&out.stdout).expect("cluster info --json");
    assert_eq!(info["quorum"]["leader_id"], leader, "{info}");
    assert_eq!(info["quorum"]["voters"].as_array().map(Vec::len), Some(3));

    nodes[leader_index].kill9();
    let killed_at = Instant::now();
    let survivors: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let alive: Vec<&Broker> = survivors
        .iter()
        .map(|id| &nodes[*id as usize - 1])
        .collect();
    let (new_leader, new_term) = agreed_leader(&alive, &survivors);
    let failover = killed_at.elapsed();
    assert!(new_term > term, "a new term: {new_term} after {term}");
    assert!(
        failover < Duration::from_secs(10),
        "new leader {new_leader} only after {failover:?}"
    );
    let mut fenced: Vec<(i64, bool)> = (1..=3).map(|id| (id, id as u64 == leader)).collect();
    brokers_become(&nodes[new_leader as usize - 1], &fenced);
    // The fenced broker is no longer listed and its partitions have no leader until it is back.
    let killed = leader as i32;
    let without_killed = metadata_becomes(&nodes[new_leader as usize - 1], "fenced", |m| {
        !broker_ids(m).contains(&killed)
            && leaders(m, "kept")
                .iter()
                .all(|(id, code)| *id != killed && (*id >= 0) == (*code == error_code::NONE))
    });
    let orphaned = leaders(&without_killed, "kept")
        .iter()
        .filter(|(id, code)| *id == -1 && *code == error_code::LEADER_NOT_AVAILABLE)
        .count();
    assert_eq!(
        orphaned, 1,
        "one of 3 partitions was on the fenced broker: {without_killed:?}"
    );
    kafka::create_topic(&nodes[new_leader as usize - 1].addr(), "while-down", 2);
    let deleted = run_ok(
        Command::new(riffle_bin()).args([
            "topic",
            "delete",
            "orders",
            "--brokers",
            &nodes[new_leader as usize - 1].addr(),
        ]),
        None,
        COMMAND_TIMEOUT,
    );
    assert!(deleted.status.success());

    nodes[leader_index].restart();
    let all: Vec<&Broker> = nodes.iter().collect();
    let (leader_after, _) = agreed_leader(&all, &survivors);
    all_voters_caught_up(&nodes[leader_after as usize - 1]);
    fenced.iter_mut().for_each(|b| b.1 = false);
    brokers_become(&nodes[leader_after as usize - 1], &fenced);
    metadata_becomes(&nodes[leader_after as usize - 1], "led again", |m| {
        let kept = leaders(m, "kept");
        kept.iter().filter(|(id, _)| *id == killed).count() == 1
            && kept.iter().all(|(_, code)| *code == error_code::NONE)
    });
    kcat_sees(&nodes[leader_index], "while-down", Some(2));
    kcat_sees(&nodes[leader_index], "orders", None);
    let log = nodes[leader_index].stderr_log();
    assert!(
        !log.contains("/controller"),
        "the Raft log is never taken for a partition directory:\n{log}"
    );

    // Two of three gone: no majority, so a change is refused with a retriable error, and the
    // survivor does not show it.
    let survivor = (leader_after as usize) % 3;
    for (i, node) in nodes.iter_mut().enumerate() {
        if i != survivor {
            node.kill9();
        }
    }
    let (code, message) =
        kafka::try_create_topic(&nodes[survivor].addr(), "no-majority", 1, 1, &[]);
    assert_eq!(code, 7, "REQUEST_TIMED_OUT: {message:?}");
    assert!(
        message.as_deref().is_some_and(|m| m.contains("quorum")),
        "{message:?}"
    );
    kcat_sees(&nodes[survivor], "no-majority", None);
}

#[test]
fn controller_port_closes_connections_that_are_not_controllers_of_this_cluster() {
    let nodes = start_cluster();
    let node = &nodes[0];
    let quorum = cluster_doc(node)["quorum"].clone();
    let address = quorum["voters"][0]["address"]
        .as_str()
        .expect("voter address")
        .to_string();
    let other_cluster = {
        let cluster_id = b"another-cluster";
        let mut payload = b"RFLC".to_vec();
        payload.push(1);
        payload.extend_from_slice(&2u64.to_be_bytes());
        payload.push(cluster_id.len() as u8);
        payload.extend_from_slice(cluster_id);
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&payload);
        frame
    };
    for (what, bytes) in [
        // "GET " read as a length is a 1.2 GB frame.
        ("an HTTP request", b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        ("a frame of garbage", b"\0\0\0\x05hello".to_vec()),
        ("another cluster's handshake", other_cluster),
    ] {
        let mut stream = TcpStream::connect(&address).expect("connect to the controller port");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(&bytes).unwrap();
        let mut buf = [0u8; 16];
        let read = stream.read(&mut buf);
        assert!(
            matches!(read, Ok(0))
                || read
                    .as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "{what}: the controller closes the connection, got {read:?}"
        );
    }
    let log = node.stderr_log();
    assert!(log.contains("exceeds"), "{log}");
    assert!(log.contains("not a riffle controller handshake"), "{log}");
    assert!(log.contains("another-cluster"), "{log}");
    // The quorum is unharmed.
    let all: Vec<&Broker> = nodes.iter().collect();
    agreed_leader(&all, &[1, 2, 3]);
}

#[test]
fn a_node_without_quorum_reports_none() {
    let broker = Broker::start();
    let doc = cluster_doc(&broker);
    assert_eq!(doc["quorum"], Value::Null, "{doc}");
    assert_eq!(doc["roles"], "broker,controller", "{doc}");
    let out = run_ok(
        Command::new(riffle_bin()).args([
            "cluster",
            "info",
            "--brokers",
            &broker.addr(),
            "--admin",
            &broker.admin_addr(),
        ]),
        None,
        COMMAND_TIMEOUT,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("quorum: none"), "{text}");
    let answer = describe_quorum(&broker);
    assert_eq!(answer.error_code, error_code::INVALID_REQUEST, "{answer:?}");
}

#[test]
fn a_single_nodes_topics_are_taken_over_when_it_joins_a_quorum() {
    let data_dir = scratch_dir("riffle-takeover-");
    let mut single = Broker::start_with(BrokerOptions {
        data_dir: Some(data_dir.path().to_path_buf()),
        ..BrokerOptions::default()
    });
    kafka::create_topic(&single.addr(), "legacy", 2);
    run_ok(
        Command::new(kcat_bin()).args(["-b", &single.addr(), "-P", "-t", "legacy", "-p", "0"]),
        Some(b"kept\n".to_vec()),
        COMMAND_TIMEOUT,
    );
    single.stop();

    let nodes = start_cluster_with(Some(data_dir.path()));
    for node in &nodes {
        kcat_sees(node, "legacy", Some(2));
    }
    let out = run_ok(
        Command::new(kcat_bin()).args([
            "-b",
            &nodes[0].addr(),
            "-C",
            "-t",
            "legacy",
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-q",
        ]),
        None,
        COMMAND_TIMEOUT,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "kept");
}
