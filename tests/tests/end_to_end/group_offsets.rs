//! Committed offsets on the wire: what OffsetCommit stores survives a graceful restart, a
//! SIGKILL right after the answer and a change of shard count; a deleted topic's offsets go with
//! it; and an old client's JoinGroup v0 (what librdkafka before 2.11 needs) forms a group.
//! Real-client group tests (subscribe, rebalances) live in the groups tests.

use riffle_protocol::error_code;
use riffle_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use riffle_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use riffle_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    JoinGroupRequest, JoinGroupResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse,
};
use riffle_protocol::ApiKey;
use riffle_tests::kafka::{self, Connection};
use riffle_tests::{Broker, BrokerOptions};

const COMMIT_VERSION: i16 = 8;
const FETCH_VERSION: i16 = 7;

/// Commits `offset + partition` for every partition of `topic` from outside the group
/// (generation -1, as a manually assigned consumer does) and checks each answer.
fn commit(addr: &str, group: &str, topic: &str, partitions: i32, offset: i64) {
    let mut conn = Connection::connect(addr).expect("connect");
    let response: OffsetCommitResponse = conn
        .request(
            COMMIT_VERSION,
            &OffsetCommitRequest {
                group_id: group.into(),
                generation_id_or_member_epoch: -1,
                member_id: String::new(),
                topics: vec![OffsetCommitRequestTopic {
                    name: topic.into(),
                    partitions: (0..partitions)
                        .map(|p| OffsetCommitRequestPartition {
                            partition_index: p,
                            committed_offset: offset + i64::from(p),
                            committed_metadata: Some(format!("meta-{p}")),
                            ..Default::default()
                        })
                        .collect(),
                }],
                ..Default::default()
            },
        )
        .expect("OffsetCommit");
    for t in &response.topics {
        for p in &t.partitions {
            assert_eq!(
                p.error_code,
                error_code::NONE,
                "commit {topic}-{}",
                p.partition_index
            );
        }
    }
}

/// The committed (offset, metadata) of each partition, -1 where none.
fn committed(addr: &str, group: &str, topic: &str, partitions: i32) -> Vec<(i64, String)> {
    let mut conn = Connection::connect(addr).expect("connect");
    let response: OffsetFetchResponse = conn
        .request(
            FETCH_VERSION,
            &OffsetFetchRequest {
                group_id: group.into(),
                topics: Some(vec![OffsetFetchRequestTopic {
                    name: topic.into(),
                    partition_indexes: (0..partitions).collect(),
                }]),
                ..Default::default()
            },
        )
        .expect("OffsetFetch");
    assert_eq!(response.error_code, error_code::NONE);
    response.topics[0]
        .partitions
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, error_code::NONE);
            (p.committed_offset, p.metadata.clone().unwrap_or_default())
        })
        .collect()
}

fn expected(offset: i64, partitions: i32) -> Vec<(i64, String)> {
    (0..partitions)
        .map(|p| (offset + i64::from(p), format!("meta-{p}")))
        .collect()
}

#[test]
fn committed_offsets_survive_restart_sigkill_and_a_new_shard_count() {
    let mut broker = Broker::start_with(BrokerOptions {
        smp: 2,
        ..Default::default()
    });
    let addr = broker.addr();
    kafka::create_topic(&addr, "offsets-a", 4);
    // Groups hash to different shards; commit for several so both shards hold some.
    let groups: Vec<String> = (0..6).map(|i| format!("group-{i}")).collect();
    for (i, g) in groups.iter().enumerate() {
        commit(&addr, g, "offsets-a", 4, 100 * i as i64);
    }
    assert_eq!(
        committed(&addr, "never-committed", "offsets-a", 2),
        vec![(-1, String::new()), (-1, String::new())]
    );

    broker.stop();
    broker.restart();
    for (i, g) in groups.iter().enumerate() {
        assert_eq!(
            committed(&addr, g, "offsets-a", 4),
            expected(100 * i as i64, 4)
        );
    }

    // An acknowledged commit is on disk: SIGKILL right after it loses nothing.
    commit(&addr, &groups[0], "offsets-a", 4, 7_000);
    broker.kill9();
    broker.restart_with_smp(1);
    assert_eq!(
        committed(&addr, &groups[0], "offsets-a", 4),
        expected(7_000, 4)
    );
    assert_eq!(
        committed(&addr, &groups[5], "offsets-a", 4),
        expected(500, 4)
    );
}

#[test]
fn deleting_a_topic_forgets_its_committed_offsets() {
    let broker = Broker::start();
    let addr = broker.addr();
    kafka::create_topic(&addr, "offsets-doomed", 2);
    kafka::create_topic(&addr, "offsets-kept", 2);
    commit(&addr, "g", "offsets-doomed", 2, 10);
    commit(&addr, "g", "offsets-kept", 2, 20);

    let mut conn = Connection::connect(&addr).expect("connect");
    let deleted: DeleteTopicsResponse = conn
        .request(
            4,
            &DeleteTopicsRequest {
                topic_names: vec!["offsets-doomed".into()],
                timeout_ms: 10_000,
                ..Default::default()
            },
        )
        .expect("DeleteTopics");
    assert_eq!(deleted.responses[0].error_code, error_code::NONE);
    kafka::create_topic(&addr, "offsets-doomed", 2);
    assert_eq!(
        committed(&addr, "g", "offsets-doomed", 2),
        vec![(-1, String::new()), (-1, String::new())],
        "a re-created topic starts without the old offsets"
    );
    assert_eq!(committed(&addr, "g", "offsets-kept", 2), expected(20, 2));
}

#[test]
fn join_group_v0_is_advertised_and_forms_a_group() {
    let broker = Broker::start();
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    let versions: ApiVersionsResponse = conn
        .request(0, &ApiVersionsRequest::default())
        .expect("ApiVersions");
    for key in [
        ApiKey::JoinGroup,
        ApiKey::SyncGroup,
        ApiKey::Heartbeat,
        ApiKey::LeaveGroup,
        ApiKey::OffsetCommit,
        ApiKey::OffsetFetch,
        ApiKey::FindCoordinator,
    ] {
        let entry = versions
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .unwrap_or_else(|| panic!("{key:?} is not advertised"));
        // The trap: librdkafka before 2.11 looks for JoinGroup v0 in particular. The others
        // start at Kafka 4's floor (OffsetCommit 2, OffsetFetch 1).
        if key == ApiKey::JoinGroup {
            assert_eq!(entry.min_version, 0, "JoinGroup must be advertised from v0");
        }
    }
    // JoinGroup v0 has no rebalance timeout (the session timeout serves) and no
    // MEMBER_ID_REQUIRED round: the member gets its id and the first generation at once
    // (after the initial rebalance delay, 3 s by default).
    let joined: JoinGroupResponse = conn
        .request(
            0,
            &JoinGroupRequest {
                group_id: "old-client".into(),
                session_timeout_ms: 10_000,
                member_id: String::new(),
                protocol_type: "consumer".into(),
                protocols: vec![
                    riffle_protocol::messages::join_group_request::JoinGroupRequestProtocol {
                        name: "range".into(),
                        metadata: bytes::Bytes::from_static(b"\0\0\0\0\0\0\0\0"),
                    },
                ],
                ..Default::default()
            },
        )
        .expect("JoinGroup v0");
    assert_eq!(joined.error_code, error_code::NONE);
    assert_eq!(joined.generation_id, 1);
    assert!(!joined.member_id.is_empty());
    assert_eq!(joined.leader, joined.member_id);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.members.len(), 1);
}
