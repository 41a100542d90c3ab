//! One node driven by hand: it elects itself, answers proposals after commit, keeps its image
//! across restarts (with and without snapshots), and refuses what it must.

use std::collections::BTreeMap;
use std::path::Path;

use crate::image::MetadataError;
use crate::node::{Node, NodeConfig, ProposeError};
use crate::placement::plan_create_topic;
use crate::records::{BrokerRegistration, MetadataRecord, TopicId};

fn open(dir: &Path, incarnation: u64, snapshot_interval_entries: u64) -> Node {
    let mut config = NodeConfig::new(1, vec![1], incarnation);
    config.election_tick_range = Some((10, 11));
    config.snapshot_interval_entries = snapshot_interval_entries;
    Node::open(config, dir).unwrap()
}

fn tick_until_leader(node: &mut Node, now_ms: &mut u64) {
    for _ in 0..100 {
        *now_ms += 100;
        node.tick(*now_ms);
        node.drive().unwrap();
        if node.is_leader() {
            return;
        }
    }
    panic!("a single voter elects itself");
}

fn registration() -> MetadataRecord {
    MetadataRecord::RegisterBroker(BrokerRegistration {
        broker_id: 1,
        incarnation_id: [1; 16],
        listeners: vec![],
        rack: None,
        shard_count: 1,
    })
}

fn create_topic(node: &Node, name: &str, id: u8) -> MetadataRecord {
    plan_create_topic(node.image(), name, TopicId([id; 16]), 1, 1, BTreeMap::new()).unwrap()
}

/// Registers broker 1 and heartbeats it, which unfences it.
fn register(node: &mut Node) {
    commit(node, registration()).unwrap();
    let epoch = node.image().brokers[&1].broker_epoch;
    node.broker_heartbeat(1, epoch).unwrap();
    node.drive().unwrap();
    assert!(!node.image().brokers[&1].fenced);
}

/// Proposes and drives until the outcome of that proposal is known.
fn commit(node: &mut Node, record: MetadataRecord) -> Result<(), ProposeError> {
    let id = node.propose(record)?;
    node.drive().unwrap();
    let outcome = node
        .take_outcomes()
        .into_iter()
        .find(|o| o.proposal_id == id)
        .expect("a single node commits at once");
    outcome.result
}

#[test]
fn proposal_before_any_leader_is_not_controller() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = open(dir.path(), 1, 1000);
    assert_eq!(
        node.propose(registration()),
        Err(ProposeError::NotController { leader_hint: None })
    );
    assert!(ProposeError::NotController { leader_hint: None }.is_retriable());
}

#[test]
fn committed_records_are_answered_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut now_ms = 0;
    let mut node = open(dir.path(), 1, 1000);
    tick_until_leader(&mut node, &mut now_ms);
    register(&mut node);
    let orders = create_topic(&node, "orders", 1);
    commit(&mut node, orders.clone()).unwrap();
    assert_eq!(
        commit(&mut node, orders),
        Err(ProposeError::Rejected(MetadataError::TopicAlreadyExists {
            topic: "orders".into()
        }))
    );
    let image = node.image().clone();
    let applied = node.applied_index();
    drop(node);
    let mut node = open(dir.path(), 2, 1000);
    tick_until_leader(&mut node, &mut now_ms);
    assert_eq!(node.image(), &image);
    assert!(
        node.applied_index() > applied,
        "the new term's empty entry is applied too"
    );
}

#[test]
fn snapshots_compact_the_log_and_restore_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let mut now_ms = 0;
    let mut node = open(dir.path(), 1, 3);
    tick_until_leader(&mut node, &mut now_ms);
    register(&mut node);
    for i in 0..8 {
        let record = create_topic(&node, &format!("t{i}"), i + 1);
        commit(&mut node, record).unwrap();
    }
    let status = node.status();
    assert!(node.raft_log().latest_snapshot().get_metadata().index >= status.applied_index - 3);
    let image = node.image().clone();
    drop(node);
    let mut node = open(dir.path(), 2, 3);
    tick_until_leader(&mut node, &mut now_ms);
    assert_eq!(node.image(), &image);
}

#[test]
fn silent_broker_is_fenced_by_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let mut now_ms = 0;
    let mut node = open(dir.path(), 1, 1000);
    tick_until_leader(&mut node, &mut now_ms);
    commit(&mut node, registration()).unwrap();
    let epoch = node.image().brokers[&1].broker_epoch;
    node.broker_heartbeat(1, epoch).unwrap();
    node.drive().unwrap();
    assert!(!node.image().brokers[&1].fenced, "a heartbeat unfences");
    let session_ms = NodeConfig::new(1, vec![1], 1).broker_session_timeout_ms;
    let deadline_ms = now_ms + session_ms;
    while now_ms < deadline_ms - 100 {
        now_ms += 100;
        node.tick(now_ms);
        node.drive().unwrap();
        assert!(!node.image().brokers[&1].fenced, "fenced early at {now_ms}");
    }
    now_ms += 200;
    node.tick(now_ms);
    node.drive().unwrap();
    assert!(node.image().brokers[&1].fenced);
    assert!(matches!(
        node.broker_heartbeat(1, epoch + 1),
        Err(ProposeError::Rejected(
            MetadataError::StaleBrokerEpoch { .. }
        ))
    ));
}

#[test]
fn the_leader_is_never_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut now_ms = 0;
    let mut node = open(dir.path(), 1, 1000);
    tick_until_leader(&mut node, &mut now_ms);
    assert!(matches!(
        node.propose_remove_voter(1),
        Err(ProposeError::Rejected(
            MetadataError::IneligibleReplica { .. }
        ))
    ));
    assert_eq!(
        node.transfer_leadership(),
        None,
        "no follower to transfer to"
    );
}

#[test]
fn record_size_limit_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let mut now_ms = 0;
    let mut node = open(dir.path(), 1, 1000);
    tick_until_leader(&mut node, &mut now_ms);
    let huge = MetadataRecord::AlterTopicConfigs {
        topic_id: TopicId([1; 16]),
        set: BTreeMap::from([("k".into(), "v".repeat(crate::node::RECORD_MAX_BYTES))]),
        delete: vec![],
    };
    assert!(matches!(
        node.propose(huge),
        Err(ProposeError::RecordTooLarge { .. })
    ));
}

#[test]
fn proposals_are_batched_within_the_entry_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut now_ms = 0;
    let mut node = open(dir.path(), 1, 1000);
    tick_until_leader(&mut node, &mut now_ms);
    register(&mut node);
    let applied_before = node.applied_index();
    // Records of ~1 MiB: four fit ENTRY_RECORD_MAX_BYTES, so ten need three entries.
    let topic = create_topic(&node, "big-configs", 1);
    commit(&mut node, topic).unwrap();
    let topic_id = node.image().topic_by_name("big-configs").unwrap().topic_id;
    let applied_before_alters = node.applied_index();
    let value = "v".repeat(crate::node::RECORD_MAX_BYTES - 100);
    let ids: Vec<u64> = (0..10)
        .map(|i| {
            let alter = MetadataRecord::AlterTopicConfigs {
                topic_id,
                set: BTreeMap::from([(format!("k{i}"), value.clone())]),
                delete: vec![],
            };
            node.propose(alter).unwrap()
        })
        .collect();
    node.drive().unwrap();
    let outcomes = node.take_outcomes();
    assert_eq!(outcomes.len(), ids.len());
    // Values beyond TOPIC_CONFIG_VALUE_MAX_LEN: each is committed, refused, and changes nothing.
    assert!(outcomes.iter().all(|o| matches!(
        o.result,
        Err(ProposeError::Rejected(MetadataError::InvalidConfig { .. }))
    )));
    assert!(node.image().topics[&topic_id].configs.is_empty());
    assert_eq!(
        node.applied_index() - applied_before_alters,
        3,
        "10 records in entries of at most 4"
    );
    assert!(applied_before < applied_before_alters);
}
