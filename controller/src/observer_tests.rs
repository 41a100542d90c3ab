//! A broker-only node (`Observer`) following a one-voter quorum by hand: it catches up by
//! chunked snapshot then entries, ends with the voter's image, gets its proposals answered
//! (or refused), is told where the leader is by a node that does not lead, and keeps its
//! broker session with its fetches.

use std::collections::BTreeMap;
use std::path::Path;

use crate::image::{MetadataImage, TOPIC_CONFIG_VALUE_MAX_LEN};
use crate::node::{Node, NodeConfig, ProposeError};
use crate::observer::{FetchResponse, Observer, Refusal, SNAPSHOT_CHUNK_BYTES};
use crate::placement::plan_create_topic;
use crate::records::{self, BrokerRegistration, MetadataRecord, Proposal, TopicId};

const OBSERVER_ID: i32 = 7;

fn open(dir: &Path, snapshot_interval_entries: u64) -> Node {
    let mut config = NodeConfig::new(1, vec![1], 1);
    config.election_tick_range = Some((10, 11));
    config.snapshot_interval_entries = snapshot_interval_entries;
    config.broker_session_timeout_ms = 1000;
    Node::open(config, dir).unwrap()
}

fn elect(node: &mut Node, now_ms: &mut u64) {
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

fn registration(broker_id: i32) -> MetadataRecord {
    MetadataRecord::RegisterBroker(BrokerRegistration {
        broker_id,
        incarnation_id: [broker_id as u8; 16],
        listeners: vec![],
        rack: None,
        shard_count: 1,
    })
}

fn big_configs(config_bytes: usize) -> BTreeMap<String, String> {
    (0..config_bytes / TOPIC_CONFIG_VALUE_MAX_LEN)
        .map(|i| {
            (
                format!("riffle.test.{i}"),
                "x".repeat(TOPIC_CONFIG_VALUE_MAX_LEN),
            )
        })
        .collect()
}

/// A topic whose configs make it about `config_bytes` large.
fn topic(image: &MetadataImage, name: &str, id: u8, config_bytes: usize) -> MetadataRecord {
    plan_create_topic(
        image,
        name,
        TopicId([id; 16]),
        1,
        1,
        big_configs(config_bytes),
    )
    .unwrap()
}

/// Registers broker 1 and heartbeats it, which unfences it.
fn register(node: &mut Node) {
    commit(node, registration(1));
    let epoch = node.image().brokers[&1].broker_epoch;
    node.broker_heartbeat(1, epoch).unwrap();
    node.drive().unwrap();
    assert!(!node.image().brokers[&1].fenced);
}

fn commit(node: &mut Node, record: MetadataRecord) {
    let id = node.propose(record).unwrap();
    node.drive().unwrap();
    let outcome = node
        .take_outcomes()
        .into_iter()
        .find(|o| o.proposal_id == id);
    assert_eq!(outcome.map(|o| o.result), Some(Ok(())));
}

/// One round trip: the observer's request, the node's answer, the node's drive.
fn round_trip(node: &mut Node, observer: &mut Observer) -> FetchResponse {
    let epoch = observer
        .image()
        .brokers
        .get(&OBSERVER_ID)
        .map(|b| b.broker_epoch);
    let request = observer.request(epoch);
    // The request crosses the wire as bytes.
    let request = records::decode(&records::encode(&request)).unwrap();
    let response = node.answer_fetch(request);
    node.drive().unwrap();
    observer.on_response(response.clone()).unwrap();
    response
}

#[test]
fn an_observer_catches_up_by_chunked_snapshot_then_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut now_ms = 0;
    let mut node = open(dir.path(), 3);
    elect(&mut node, &mut now_ms);
    register(&mut node);
    // Five topics of ~250 KiB: the snapshot spans two chunks.
    for i in 0..5u8 {
        let record = topic(node.image(), &format!("big-{i}"), i + 1, 250 * 1024);
        commit(&mut node, record);
    }
    let snapshot_bytes = records::encode(node.image()).len();
    assert!(snapshot_bytes > SNAPSHOT_CHUNK_BYTES, "{snapshot_bytes}");
    // Entries after the last snapshot, fetched after it.
    for (name, id) in [("small", 9), ("small-2", 10)] {
        let record = topic(node.image(), name, id, 0);
        commit(&mut node, record);
    }
    let snapshot_index = node.raft_log().latest_snapshot().get_metadata().index;
    assert!(snapshot_index < node.applied_index());

    let mut observer = Observer::new(OBSERVER_ID, 42, 5000);
    let mut chunks = 0;
    for _ in 0..10 {
        match round_trip(&mut node, &mut observer) {
            FetchResponse::Fetched(fetched) => {
                chunks += usize::from(fetched.snapshot.is_some());
                if !fetched.more {
                    break;
                }
            }
            other => panic!("the leader answers: {other:?}"),
        }
    }
    assert!(chunks >= 2, "{chunks} snapshot chunks");
    assert_eq!(observer.applied_index(), node.applied_index());
    assert_eq!(observer.image(), node.image());
    assert_eq!(observer.leader().map(|l| l.leader_id), Some(1));
}

#[test]
fn observer_proposals_are_answered_once_applied_and_its_fetches_keep_it_unfenced() {
    let dir = tempfile::tempdir().unwrap();
    let mut now_ms = 0;
    let mut node = open(dir.path(), 1000);
    elect(&mut node, &mut now_ms);
    let mut observer = Observer::new(OBSERVER_ID, 42, 5000);
    round_trip(&mut node, &mut observer);

    let id = observer.propose(registration(OBSERVER_ID)).unwrap();
    round_trip(&mut node, &mut observer);
    round_trip(&mut node, &mut observer);
    let outcomes = observer.take_outcomes();
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(
        (outcomes[0].proposal_id, &outcomes[0].result),
        (id, &Ok(()))
    );
    assert!(
        observer.image().brokers[&OBSERVER_ID].fenced,
        "fenced until it heartbeats"
    );
    // Its next fetches carry its epoch: the leader unfences it, and it learns so.
    round_trip(&mut node, &mut observer);
    round_trip(&mut node, &mut observer);
    assert!(!observer.image().brokers[&OBSERVER_ID].fenced);
    assert!(!node.image().brokers[&OBSERVER_ID].fenced);

    // A topic it proposes is placed on it (the only usable broker) and answered.
    let record = plan_create_topic(
        observer.image(),
        "t",
        TopicId([3; 16]),
        2,
        1,
        BTreeMap::new(),
    )
    .unwrap();
    let id = observer.propose(record).unwrap();
    round_trip(&mut node, &mut observer);
    round_trip(&mut node, &mut observer);
    let outcomes = observer.take_outcomes();
    assert_eq!(
        outcomes.iter().map(|o| o.proposal_id).collect::<Vec<_>>(),
        vec![id]
    );
    assert_eq!(outcomes[0].result, Ok(()));
    assert_eq!(observer.image(), node.image());

    // A proposal too large is refused by the observer, and by the leader if sent anyway.
    let huge = MetadataRecord::CreateTopic {
        name: "huge".into(),
        topic_id: TopicId([4; 16]),
        partitions: vec![],
        configs: big_configs(2 * 1024 * 1024),
    };
    assert!(matches!(
        observer.propose(huge.clone()),
        Err(ProposeError::RecordTooLarge { .. })
    ));
    let mut request = observer.request(None);
    request.proposals.push(Proposal {
        origin_node: OBSERVER_ID as u64,
        origin_incarnation: 42,
        proposal_id: 99,
        record: huge,
    });
    let FetchResponse::Fetched(fetched) = node.answer_fetch(request) else {
        panic!("the leader answers");
    };
    assert!(matches!(
        fetched.refused.as_slice(),
        [(99, Refusal::RecordTooLarge { .. })]
    ));
    node.drive().unwrap();
    assert!(node.image().topic_by_name("huge").is_none());

    // Silent past its session, it is fenced; fetching again unfences it.
    for _ in 0..15 {
        now_ms += 100;
        node.tick(now_ms);
        node.drive().unwrap();
    }
    assert!(node.image().brokers[&OBSERVER_ID].fenced);
    round_trip(&mut node, &mut observer);
    round_trip(&mut node, &mut observer);
    assert!(!observer.image().brokers[&OBSERVER_ID].fenced);
}

#[test]
fn a_node_that_does_not_lead_takes_no_proposal_and_it_is_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut now_ms = 0;
    let mut node = open(dir.path(), 1000);
    let mut observer = Observer::new(OBSERVER_ID, 42, 5000);
    let id = observer.propose(registration(OBSERVER_ID)).unwrap();
    // Not elected yet: no leader known.
    let answer = round_trip(&mut node, &mut observer);
    assert_eq!(answer, FetchResponse::NotLeader { leader_hint: None });
    assert!(observer.take_outcomes().is_empty());
    elect(&mut node, &mut now_ms);
    round_trip(&mut node, &mut observer);
    round_trip(&mut node, &mut observer);
    let outcomes = observer.take_outcomes();
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(
        (outcomes[0].proposal_id, &outcomes[0].result),
        (id, &Ok(()))
    );
    assert!(node.image().brokers.contains_key(&OBSERVER_ID));
}

#[test]
fn a_proposal_never_sent_times_out_and_is_never_sent() {
    let dir = tempfile::tempdir().unwrap();
    let mut now_ms = 0;
    let mut node = open(dir.path(), 1000);
    elect(&mut node, &mut now_ms);
    let mut observer = Observer::new(OBSERVER_ID, 42, 500);
    let id = observer.propose(registration(OBSERVER_ID)).unwrap();
    observer.tick(1000);
    let outcomes = observer.take_outcomes();
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].proposal_id, id);
    assert!(outcomes[0].result.as_ref().unwrap_err().is_retriable());
    round_trip(&mut node, &mut observer);
    round_trip(&mut node, &mut observer);
    assert!(!node.image().brokers.contains_key(&OBSERVER_ID));
    assert!(observer.take_outcomes().is_empty());
}
