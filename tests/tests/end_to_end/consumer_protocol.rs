//! KIP-848 consumer groups (ConsumerGroupHeartbeat, ConsumerGroupDescribe): confluent-kafka with
//! `group.protocol=consumer` splits a topic, rebalances when a member leaves, commits, and finds its
//! offsets again after a broker restart, with a classic group alongside; and on the wire, the
//! errors Kafka answers (unknown assignor, invalid joins, a classic join on a consumer group,
//! stale commit epochs) and what ListGroups and ConsumerGroupDescribe show; the classic group
//! APIs on a consumer group (DescribeGroups, OffsetFetch and OffsetCommit with a member epoch,
//! ListGroups' type filter) and ConsumerGroupHeartbeat on a classic group, as Kafka 4 answers
//! them; and confluent-kafka moving an empty group from one protocol to the other and back.

use std::time::Duration;

use riffle_protocol::error_code;
use riffle_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use riffle_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use riffle_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use riffle_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use riffle_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    JoinGroupRequest, JoinGroupResponse, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
};
use riffle_tests::kafka::{self, Connection};
use riffle_tests::{python_ok, Broker, BrokerOptions};

/// Short heartbeats so that reconciliation takes a few hundred ms, not Kafka's 5 s steps.
const CONFIG: &str =
    "group_initial_rebalance_delay_ms = 200\ngroup_consumer_heartbeat_interval_ms = 500\n";
const CLIENT_TIMEOUT: Duration = Duration::from_secs(150);

fn broker() -> Broker {
    Broker::start_with(BrokerOptions {
        config_toml: Some(CONFIG.to_string()),
        ..Default::default()
    })
}

#[test]
fn confluent_consumer_protocol_splits_rebalances_and_keeps_offsets_across_a_restart() {
    let mut broker = broker();
    let topic = "kip848-topic";
    kafka::create_topic(&broker.addr(), topic, 4);
    let addr = broker.addr();
    let args = |phase| {
        [
            addr.as_str(),
            topic,
            "4",
            "kip848-group",
            "kip848-classic",
            phase,
        ]
    };
    python_ok(
        "confluent_consumer_protocol.py",
        &args("run"),
        CLIENT_TIMEOUT,
    );
    broker.stop();
    broker.restart();
    let resume = args("resume");
    python_ok("confluent_consumer_protocol.py", &resume, CLIENT_TIMEOUT);
}

fn heartbeat(
    conn: &mut Connection,
    request: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    conn.request(1, &request).expect("ConsumerGroupHeartbeat")
}

fn join(group: &str, member: &str, topic: &str) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest {
        group_id: group.to_string(),
        member_id: member.to_string(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(vec![topic.to_string()]),
        topic_partitions: Some(Vec::new()),
        ..Default::default()
    }
}

fn commit(conn: &mut Connection, group: &str, member: &str, epoch: i32, topic: &str) -> i16 {
    commit_v(conn, 9, group, member, epoch, topic)
}

fn commit_v(
    conn: &mut Connection,
    version: i16,
    group: &str,
    member: &str,
    epoch: i32,
    topic: &str,
) -> i16 {
    let response: OffsetCommitResponse = conn
        .request(
            version,
            &OffsetCommitRequest {
                group_id: group.to_string(),
                generation_id_or_member_epoch: epoch,
                member_id: member.to_string(),
                topics: vec![OffsetCommitRequestTopic {
                    name: topic.to_string(),
                    partitions: vec![OffsetCommitRequestPartition {
                        partition_index: 0,
                        committed_offset: 0,
                        ..Default::default()
                    }],
                }],
                ..Default::default()
            },
        )
        .expect("OffsetCommit");
    response.topics[0].partitions[0].error_code
}

#[test]
fn consumer_group_heartbeat_answers_kafkas_errors_and_describes_the_group() {
    let broker = broker();
    let topic = "kip848-wire";
    kafka::create_topic(&broker.addr(), topic, 2);
    let mut conn = Connection::connect(&broker.addr()).expect("connect");

    let mut bad = join("g", "m1", topic);
    bad.server_assignor = Some("sticky".to_string());
    assert_eq!(
        heartbeat(&mut conn, bad).error_code,
        error_code::UNSUPPORTED_ASSIGNOR
    );
    let mut bad = join("g", "m1", topic);
    bad.rebalance_timeout_ms = -1;
    assert_eq!(
        heartbeat(&mut conn, bad).error_code,
        error_code::INVALID_REQUEST
    );
    let unknown = ConsumerGroupHeartbeatRequest {
        member_epoch: 3,
        ..join("g", "nobody", topic)
    };
    assert_eq!(
        heartbeat(&mut conn, unknown).error_code,
        error_code::UNKNOWN_MEMBER_ID
    );

    let mut range = join("g", "m1", topic);
    range.server_assignor = Some("range".to_string());
    let joined = heartbeat(&mut conn, range);
    assert_eq!(joined.error_code, error_code::NONE);
    assert_eq!(joined.member_id.as_deref(), Some("m1"));
    assert_eq!(joined.member_epoch, 1);
    assert_eq!(joined.heartbeat_interval_ms, 500);
    let assignment = joined
        .assignment
        .expect("a joining member gets its assignment");
    assert_eq!(assignment.topic_partitions.len(), 1);
    assert_eq!(assignment.topic_partitions[0].partitions, vec![0, 1]);

    let future = ConsumerGroupHeartbeatRequest {
        member_epoch: 9,
        ..join("g", "m1", topic)
    };
    assert_eq!(
        heartbeat(&mut conn, future).error_code,
        error_code::FENCED_MEMBER_EPOCH
    );

    // Commits carry the member epoch (OffsetCommit v9).
    assert_eq!(commit(&mut conn, "g", "m1", 1, topic), error_code::NONE);
    assert_eq!(
        commit(&mut conn, "g", "m1", 0, topic),
        error_code::STALE_MEMBER_EPOCH
    );
    assert_eq!(
        commit(&mut conn, "g", "m9", 1, topic),
        error_code::UNKNOWN_MEMBER_ID
    );

    // A classic member cannot join it.
    let classic: JoinGroupResponse = conn
        .request(
            5,
            &JoinGroupRequest {
                group_id: "g".to_string(),
                session_timeout_ms: 10_000,
                rebalance_timeout_ms: 10_000,
                protocol_type: "consumer".to_string(),
                protocols: vec![JoinGroupRequestProtocol {
                    name: "range".to_string(),
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .expect("JoinGroup");
    assert_eq!(classic.error_code, error_code::INCONSISTENT_GROUP_PROTOCOL);

    let described: ConsumerGroupDescribeResponse = conn
        .request(
            1,
            &ConsumerGroupDescribeRequest {
                group_ids: vec!["g".to_string(), "missing".to_string()],
                ..Default::default()
            },
        )
        .expect("ConsumerGroupDescribe");
    let g = &described.groups[0];
    assert_eq!(g.error_code, error_code::NONE);
    assert_eq!(g.group_state, "Stable");
    assert_eq!((g.group_epoch, g.assignment_epoch), (1, 1));
    assert_eq!(g.assignor_name, "range");
    assert_eq!(g.members.len(), 1);
    let m = &g.members[0];
    assert_eq!(
        (m.member_id.as_str(), m.member_epoch, m.member_type),
        ("m1", 1, 1)
    );
    assert_eq!(m.subscribed_topic_names, vec![topic.to_string()]);
    assert_eq!(m.assignment.topic_partitions[0].topic_name, topic);
    assert_eq!(m.assignment.topic_partitions[0].partitions, vec![0, 1]);
    assert_eq!(
        described.groups[1].error_code,
        error_code::GROUP_ID_NOT_FOUND
    );

    let listed: ListGroupsResponse = conn
        .request(
            5,
            &ListGroupsRequest {
                types_filter: vec!["consumer".to_string()],
                ..Default::default()
            },
        )
        .expect("ListGroups");
    let row = listed
        .groups
        .iter()
        .find(|g| g.group_id == "g")
        .expect("listed");
    assert_eq!(
        (row.group_type.as_str(), row.group_state.as_str()),
        ("consumer", "Stable")
    );

    // m1 leaves: the group is empty and a new member gets everything at the next epoch.
    let leave = ConsumerGroupHeartbeatRequest {
        member_epoch: -1,
        ..join("g", "m1", topic)
    };
    let left = heartbeat(&mut conn, leave);
    assert_eq!((left.error_code, left.member_epoch), (error_code::NONE, -1));
    let second = heartbeat(&mut conn, join("g", "m2", topic));
    assert_eq!(second.member_epoch, 3);
    let owned = second.assignment.expect("assignment").topic_partitions;
    assert_eq!(owned[0].partitions, vec![0, 1]);
    // Its next heartbeat, owning what it was given, changes nothing.
    let again = heartbeat(
        &mut conn,
        ConsumerGroupHeartbeatRequest {
            group_id: "g".to_string(),
            member_id: "m2".to_string(),
            member_epoch: 3,
            topic_partitions: Some(
                owned
                    .iter()
                    .map(|t| TopicPartitions {
                        topic_id: t.topic_id,
                        partitions: t.partitions.clone(),
                    })
                    .collect(),
            ),
            ..Default::default()
        },
    );
    assert_eq!(
        (again.error_code, again.member_epoch),
        (error_code::NONE, 3)
    );
}

#[test]
fn confluent_moves_an_empty_group_to_the_consumer_protocol_and_back_keeping_its_offsets() {
    let broker = broker();
    let topic = "kip848-upgrade";
    kafka::create_topic(&broker.addr(), topic, 4);
    let addr = broker.addr();
    let args = [addr.as_str(), topic, "4", "kip848-upgrade-group"];
    python_ok("confluent_group_protocol_upgrade.py", &args, CLIENT_TIMEOUT);
}

fn offset_fetch(
    conn: &mut Connection,
    version: i16,
    group: &str,
    member: Option<&str>,
    epoch: i32,
    topic: &str,
) -> (i16, i64) {
    let response: OffsetFetchResponse = conn
        .request(
            version,
            &OffsetFetchRequest {
                groups: vec![OffsetFetchRequestGroup {
                    group_id: group.to_string(),
                    member_id: member.map(str::to_string),
                    member_epoch: epoch,
                    topics: Some(vec![OffsetFetchRequestTopics {
                        name: topic.to_string(),
                        partition_indexes: vec![0],
                    }]),
                }],
                ..Default::default()
            },
        )
        .expect("OffsetFetch");
    let g = &response.groups[0];
    let offset = g
        .topics
        .first()
        .map_or(-1, |t| t.partitions[0].committed_offset);
    (g.error_code, offset)
}

fn describe_groups(conn: &mut Connection, version: i16, group: &str) -> DescribeGroupsResponse {
    conn.request(
        version,
        &DescribeGroupsRequest {
            groups: vec![group.to_string()],
            ..Default::default()
        },
    )
    .expect("DescribeGroups")
}

fn listed_types(conn: &mut Connection, types: &[&str]) -> Vec<String> {
    let listed: ListGroupsResponse = conn
        .request(
            5,
            &ListGroupsRequest {
                types_filter: types.iter().map(|t| t.to_string()).collect(),
                ..Default::default()
            },
        )
        .expect("ListGroups");
    listed.groups.into_iter().map(|g| g.group_id).collect()
}

#[test]
fn classic_group_apis_on_a_consumer_group_answer_as_kafka_4() {
    let broker = broker();
    let topic = "kip848-mixed";
    kafka::create_topic(&broker.addr(), topic, 1);
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    let joined = heartbeat(&mut conn, join("cg", "m1", topic));
    assert_eq!(
        (joined.error_code, joined.member_epoch),
        (error_code::NONE, 1)
    );

    // DescribeGroups describes classic groups only.
    let v6 = describe_groups(&mut conn, 6, "cg");
    let g = &v6.groups[0];
    assert_eq!(
        (g.error_code, g.group_state.as_str()),
        (error_code::GROUP_ID_NOT_FOUND, "Dead")
    );
    assert_eq!(
        g.error_message.as_deref(),
        Some("Group cg is not a classic group.")
    );
    let v5 = describe_groups(&mut conn, 5, "cg");
    assert_eq!(
        (v5.groups[0].error_code, v5.groups[0].group_state.as_str()),
        (error_code::NONE, "Dead")
    );

    // Offsets: a member commits and fetches with its current epoch, from v9.
    assert_eq!(commit(&mut conn, "cg", "m1", 1, topic), error_code::NONE);
    assert_eq!(
        commit_v(&mut conn, 8, "cg", "m1", 1, topic),
        error_code::UNSUPPORTED_VERSION
    );
    assert_eq!(
        offset_fetch(&mut conn, 9, "cg", Some("m1"), 1, topic),
        (error_code::NONE, 0)
    );
    assert_eq!(
        offset_fetch(&mut conn, 9, "cg", Some("m1"), 0, topic).0,
        error_code::STALE_MEMBER_EPOCH
    );
    assert_eq!(
        offset_fetch(&mut conn, 9, "cg", Some("m9"), 1, topic).0,
        error_code::UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        offset_fetch(&mut conn, 9, "cg", None, -1, topic),
        (error_code::NONE, 0),
        "an admin fetches without a member"
    );
    assert_eq!(
        offset_fetch(&mut conn, 8, "cg", None, -1, topic),
        (error_code::NONE, 0)
    );

    // A classic group with a member, alongside: ListGroups tells the types apart.
    let classic: JoinGroupResponse = conn
        .request(
            0,
            &JoinGroupRequest {
                group_id: "classic-g".to_string(),
                session_timeout_ms: 30_000,
                protocol_type: "consumer".to_string(),
                protocols: vec![JoinGroupRequestProtocol {
                    name: "range".to_string(),
                    metadata: bytes::Bytes::from_static(&[
                        0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
                    ]),
                }],
                ..Default::default()
            },
        )
        .expect("JoinGroup");
    assert_eq!(classic.error_code, error_code::NONE);
    assert!(listed_types(&mut conn, &["consumer"]).contains(&"cg".to_string()));
    assert!(!listed_types(&mut conn, &["consumer"]).contains(&"classic-g".to_string()));
    assert!(listed_types(&mut conn, &["classic"]).contains(&"classic-g".to_string()));
    assert!(!listed_types(&mut conn, &["Classic"]).contains(&"cg".to_string()));

    // A consumer-protocol member cannot join a classic group that has members (Kafka 4 would
    // convert it online; see compat/FINDINGS.md), with Kafka's error and message.
    let refused = heartbeat(&mut conn, join("classic-g", "m2", topic));
    assert_eq!(refused.error_code, error_code::GROUP_ID_NOT_FOUND);
    assert_eq!(
        refused.error_message.as_deref(),
        Some("Group classic-g is not a consumer group.")
    );
}
