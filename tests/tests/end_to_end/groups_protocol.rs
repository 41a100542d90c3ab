//! Consumer-group rules a client only sees as error codes and coordinator addresses:
//! FindCoordinator names this broker for a group, JoinGroup refuses session timeouts outside
//! group_min/max_session_timeout_ms (Kafka's 6000..1800000 by default), from v4 on a first
//! JoinGroup without a member id is answered MEMBER_ID_REQUIRED with the id to rejoin with, and
//! a member whose session expired, or a stale generation, can no longer commit.

use riffle_protocol::error_code;
use std::thread;
use std::time::Duration;

use riffle_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use riffle_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use riffle_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use riffle_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use riffle_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, ListGroupsRequest,
    ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse,
};
use riffle_tests::kafka::{self, Connection};
use riffle_tests::{Broker, BrokerOptions};

/// A consumer-protocol subscription (version 0, no topics, no user data): what the coordinator
/// stores and hands to the leader, never parses.
const SUBSCRIPTION: &[u8] = &[0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];

fn join(
    conn: &mut Connection,
    version: i16,
    group: &str,
    member_id: &str,
    session_timeout_ms: i32,
) -> JoinGroupResponse {
    join_with_rebalance_timeout(
        conn,
        version,
        group,
        member_id,
        session_timeout_ms,
        session_timeout_ms,
    )
}

fn join_with_rebalance_timeout(
    conn: &mut Connection,
    version: i16,
    group: &str,
    member_id: &str,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
) -> JoinGroupResponse {
    conn.request(
        version,
        &JoinGroupRequest {
            group_id: group.to_string(),
            session_timeout_ms,
            rebalance_timeout_ms,
            member_id: member_id.to_string(),
            protocol_type: "consumer".to_string(),
            protocols: vec![JoinGroupRequestProtocol {
                name: "range".to_string(),
                metadata: bytes::Bytes::from_static(SUBSCRIPTION),
            }],
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("JoinGroup v{version} for {group}: {e}"))
}

/// Joins with v5: MEMBER_ID_REQUIRED first, then the group with this one member.
fn join_v5(conn: &mut Connection, group: &str, session_timeout_ms: i32) -> JoinGroupResponse {
    let first = join(conn, 5, group, "", session_timeout_ms);
    assert_eq!(
        first.error_code,
        error_code::MEMBER_ID_REQUIRED,
        "JoinGroup v5 without a member id: {first:?}"
    );
    assert!(
        !first.member_id.is_empty(),
        "MEMBER_ID_REQUIRED carries the member id to use: {first:?}"
    );
    let joined = join(conn, 5, group, &first.member_id, session_timeout_ms);
    assert_eq!(joined.error_code, error_code::NONE, "rejoin: {joined:?}");
    assert_eq!(joined.member_id, first.member_id, "{joined:?}");
    assert_eq!(
        joined.leader, joined.member_id,
        "the only member leads: {joined:?}"
    );
    assert_eq!(
        joined.members.len(),
        1,
        "the leader gets the members: {joined:?}"
    );
    assert_eq!(joined.members[0].metadata.as_ref(), SUBSCRIPTION);
    joined
}

fn assert_session_timeout_refused(conn: &mut Connection, group: &str, session_timeout_ms: i32) {
    for version in [0, 5] {
        let response = join(conn, version, group, "", session_timeout_ms);
        assert_eq!(
            response.error_code,
            error_code::INVALID_SESSION_TIMEOUT,
            "JoinGroup v{version} with session timeout {session_timeout_ms} ms: {response:?}"
        );
    }
}

#[test]
fn find_coordinator_for_a_group_names_this_broker() {
    let broker = Broker::start();
    let (host, port) = broker
        .addr()
        .split_once(':')
        .map(|(h, p)| (h.to_string(), p.parse::<i32>().expect("port")))
        .expect("host:port");
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    for version in [0, 1, 2, 3] {
        let response: FindCoordinatorResponse = conn
            .request(
                version,
                &FindCoordinatorRequest {
                    key: "some-group".to_string(),
                    key_type: 0,
                    ..Default::default()
                },
            )
            .expect("FindCoordinator");
        assert_eq!(
            response.error_code,
            error_code::NONE,
            "v{version}: {response:?}"
        );
        assert_eq!(
            (response.node_id, response.host.as_str(), response.port),
            (0, host.as_str(), port),
            "v{version}: {response:?}"
        );
    }
    let response: FindCoordinatorResponse = conn
        .request(
            4,
            &FindCoordinatorRequest {
                key_type: 0,
                coordinator_keys: vec!["group-a".to_string(), "group-b".to_string()],
                ..Default::default()
            },
        )
        .expect("FindCoordinator v4");
    let answers: Vec<(&str, i16, i32, &str, i32)> = response
        .coordinators
        .iter()
        .map(|c| {
            (
                c.key.as_str(),
                c.error_code,
                c.node_id,
                c.host.as_str(),
                c.port,
            )
        })
        .collect();
    assert_eq!(
        answers,
        vec![
            ("group-a", 0, 0, host.as_str(), port),
            ("group-b", 0, 0, host.as_str(), port)
        ],
        "{response:?}"
    );
}

#[test]
fn join_group_session_timeouts_outside_kafkas_default_bounds_are_refused() {
    let broker = Broker::start_with(BrokerOptions {
        config_toml: Some("group_initial_rebalance_delay_ms = 0\n".to_string()),
        ..Default::default()
    });
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    assert_session_timeout_refused(&mut conn, "bounds-default", 5_999);
    assert_session_timeout_refused(&mut conn, "bounds-default", 1_800_001);
    join_v5(&mut conn, "bounds-default-min", 6_000);
    join_v5(&mut conn, "bounds-default-max", 1_800_000);
    // Below v4 there is no MEMBER_ID_REQUIRED round: the first JoinGroup joins.
    let v0 = join(&mut conn, 0, "bounds-default-v0", "", 6_000);
    assert_eq!(v0.error_code, error_code::NONE, "JoinGroup v0: {v0:?}");
    assert!(
        !v0.member_id.is_empty(),
        "JoinGroup v0 assigns a member id: {v0:?}"
    );
    assert_eq!(v0.leader, v0.member_id, "{v0:?}");
}

#[test]
fn join_group_session_timeout_bounds_come_from_the_config_file() {
    let broker = Broker::start_with(BrokerOptions {
        config_toml: Some(
            "group_initial_rebalance_delay_ms = 0\n\
             group_min_session_timeout_ms = 8000\n\
             group_max_session_timeout_ms = 20000\n"
                .to_string(),
        ),
        ..Default::default()
    });
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    assert_session_timeout_refused(&mut conn, "bounds-config", 7_999);
    assert_session_timeout_refused(&mut conn, "bounds-config", 20_001);
    join_v5(&mut conn, "bounds-config-min", 8_000);
    join_v5(&mut conn, "bounds-config-max", 20_000);
}

/// SyncGroup v3 for `member` in `generation`; the leader hands every member `ASSIGNMENT`.
fn sync(conn: &mut Connection, group: &str, generation: i32, member: &str, leader: bool) -> i16 {
    const ASSIGNMENT: &[u8] = &[0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
    let response: SyncGroupResponse = conn
        .request(
            3,
            &SyncGroupRequest {
                group_id: group.to_string(),
                generation_id: generation,
                member_id: member.to_string(),
                assignments: if leader {
                    vec![SyncGroupRequestAssignment {
                        member_id: member.to_string(),
                        assignment: bytes::Bytes::from_static(ASSIGNMENT),
                    }]
                } else {
                    Vec::new()
                },
                ..Default::default()
            },
        )
        .expect("SyncGroup");
    if response.error_code == error_code::NONE {
        assert_eq!(response.assignment.as_ref(), ASSIGNMENT, "{response:?}");
    }
    response.error_code
}

fn heartbeat(conn: &mut Connection, group: &str, generation: i32, member: &str) -> i16 {
    let response: HeartbeatResponse = conn
        .request(
            3,
            &HeartbeatRequest {
                group_id: group.to_string(),
                generation_id: generation,
                member_id: member.to_string(),
                ..Default::default()
            },
        )
        .expect("Heartbeat");
    response.error_code
}

/// OffsetCommit v8 of `offset` for partition 0 of `topic`; the partition's error code.
fn commit(
    conn: &mut Connection,
    group: &str,
    generation: i32,
    member: &str,
    topic: &str,
    offset: i64,
) -> i16 {
    let response: OffsetCommitResponse = conn
        .request(
            8,
            &OffsetCommitRequest {
                group_id: group.to_string(),
                generation_id_or_member_epoch: generation,
                member_id: member.to_string(),
                topics: vec![OffsetCommitRequestTopic {
                    name: topic.to_string(),
                    partitions: vec![OffsetCommitRequestPartition {
                        partition_index: 0,
                        committed_offset: offset,
                        ..Default::default()
                    }],
                }],
                ..Default::default()
            },
        )
        .expect("OffsetCommit");
    response.topics[0].partitions[0].error_code
}

fn committed(conn: &mut Connection, group: &str, topic: &str) -> i64 {
    let response: OffsetFetchResponse = conn
        .request(
            7,
            &OffsetFetchRequest {
                group_id: group.to_string(),
                topics: Some(vec![OffsetFetchRequestTopic {
                    name: topic.to_string(),
                    partition_indexes: vec![0],
                }]),
                ..Default::default()
            },
        )
        .expect("OffsetFetch");
    assert_eq!(response.error_code, error_code::NONE, "{response:?}");
    response.topics[0].partitions[0].committed_offset
}

/// Committed offsets of `group` for partitions 0..n of `topic`.
fn committed_all(conn: &mut Connection, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let response: OffsetFetchResponse = conn
        .request(
            7,
            &OffsetFetchRequest {
                group_id: group.to_string(),
                topics: Some(vec![OffsetFetchRequestTopic {
                    name: topic.to_string(),
                    partition_indexes: (0..partitions).collect(),
                }]),
                ..Default::default()
            },
        )
        .expect("OffsetFetch");
    assert_eq!(response.error_code, error_code::NONE, "{response:?}");
    response.topics[0]
        .partitions
        .iter()
        .map(|p| p.committed_offset)
        .collect()
}

/// Thousands of commits of the same partitions: the offsets log is compacted by the broker's
/// housekeeping (every 10 s) and only the latest offset of each partition counts, before and
/// after a kill -9 and a restart.
#[test]
fn offsets_log_compaction_keeps_the_latest_offsets_across_kill9() {
    const COMMITS: i64 = 6_000;
    const PIPELINE: i64 = 100;
    let mut broker = Broker::start_with(BrokerOptions {
        log_level: "info,riffle::groups=debug".to_string(),
        ..Default::default()
    });
    let topic = "compaction";
    kafka::create_topic(&broker.addr(), topic, 2);
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    assert_eq!(
        commit(&mut conn, "compaction-bystander", -1, "", topic, 77),
        error_code::NONE
    );
    let commit_request = |conn: &mut Connection, offset: i64| {
        conn.encode(
            8,
            &OffsetCommitRequest {
                group_id: "compaction-group".to_string(),
                generation_id_or_member_epoch: -1,
                topics: vec![OffsetCommitRequestTopic {
                    name: topic.to_string(),
                    partitions: (0..2)
                        .map(|p| OffsetCommitRequestPartition {
                            partition_index: p,
                            committed_offset: offset * (p as i64 + 1),
                            ..Default::default()
                        })
                        .collect(),
                }],
                ..Default::default()
            },
        )
    };
    let started = std::time::Instant::now();
    for chunk in 0..COMMITS / PIPELINE {
        let requests: Vec<u8> = (1..=PIPELINE)
            .flat_map(|n| commit_request(&mut conn, chunk * PIPELINE + n))
            .collect();
        conn.send_raw(&requests).expect("send commits");
        for _ in 0..PIPELINE {
            let frame = conn.read_frame().expect("an OffsetCommit response");
            let (_, response) =
                riffle_protocol::decode_response::<OffsetCommitResponse>(frame, 8).expect("decode");
            for p in &response.topics[0].partitions {
                assert_eq!(p.error_code, error_code::NONE, "{response:?}");
            }
        }
    }
    eprintln!("{COMMITS} commits in {:?}", started.elapsed());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !broker
        .stderr_log()
        .contains("compacted the consumer offsets log")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no compaction of the offsets log within 30 s of {COMMITS} commits\n{}",
            broker.log_tail()
        );
        thread::sleep(Duration::from_millis(200));
    }
    let want = vec![COMMITS, 2 * COMMITS];
    assert_eq!(committed_all(&mut conn, "compaction-group", topic, 2), want);
    broker.kill9();
    broker.restart();
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    assert_eq!(committed_all(&mut conn, "compaction-group", topic, 2), want);
    assert_eq!(committed(&mut conn, "compaction-bystander", topic), 77);
}

/// A member that stops heartbeating is dropped after its session timeout; its later commits
/// (a zombie's) are refused and do not rewind the group, and neither are commits that carry a
/// generation older than the current one.
#[test]
fn expired_members_and_stale_generations_cannot_commit() {
    const SESSION_MS: i32 = 1000;
    let broker = Broker::start_with(BrokerOptions {
        config_toml: Some(
            "group_initial_rebalance_delay_ms = 0\ngroup_min_session_timeout_ms = 1000\n"
                .to_string(),
        ),
        ..Default::default()
    });
    let (group, topic) = ("fencing", "fencing-topic");
    kafka::create_topic(&broker.addr(), topic, 1);
    let mut a = Connection::connect(&broker.addr()).expect("connect");
    let joined = join_v5(&mut a, group, SESSION_MS);
    let (gen_a, member_a) = (joined.generation_id, joined.member_id.clone());
    assert_eq!(
        sync(&mut a, group, gen_a, &member_a, true),
        error_code::NONE
    );
    assert_eq!(heartbeat(&mut a, group, gen_a, &member_a), error_code::NONE);
    assert_eq!(
        commit(&mut a, group, gen_a, &member_a, topic, 10),
        error_code::NONE
    );

    // No heartbeat for well over the session timeout: the member is gone.
    thread::sleep(Duration::from_millis(3 * SESSION_MS as u64));
    assert_eq!(
        heartbeat(&mut a, group, gen_a, &member_a),
        error_code::UNKNOWN_MEMBER_ID,
        "heartbeat of a member whose session expired"
    );
    let zombie = commit(&mut a, group, gen_a, &member_a, topic, 5);
    assert!(
        [
            error_code::UNKNOWN_MEMBER_ID,
            error_code::ILLEGAL_GENERATION
        ]
        .contains(&zombie),
        "a commit from the expired member was answered {zombie}, want UNKNOWN_MEMBER_ID"
    );
    assert_eq!(
        committed(&mut a, group, topic),
        10,
        "the zombie's commit rewound the group"
    );

    let mut b = Connection::connect(&broker.addr()).expect("connect");
    let joined = join_v5(&mut b, group, 6000);
    let (gen_b, member_b) = (joined.generation_id, joined.member_id.clone());
    assert!(gen_b > gen_a, "generation {gen_b} after generation {gen_a}");
    assert_eq!(
        sync(&mut b, group, gen_b, &member_b, true),
        error_code::NONE
    );
    let zombie = commit(&mut a, group, gen_a, &member_a, topic, 5);
    assert!(
        [
            error_code::UNKNOWN_MEMBER_ID,
            error_code::ILLEGAL_GENERATION
        ]
        .contains(&zombie),
        "a commit from the expired member into the new generation was answered {zombie}"
    );
    assert_eq!(
        commit(&mut b, group, gen_a, &member_b, topic, 5),
        error_code::ILLEGAL_GENERATION,
        "a member's commit with the previous generation"
    );
    assert_eq!(committed(&mut b, group, topic), 10);
    assert_eq!(
        commit(&mut b, group, gen_b, &member_b, topic, 20),
        error_code::NONE
    );
    assert_eq!(committed(&mut b, group, topic), 20);
}

/// A member that keeps heartbeating but does not rejoin a rebalance is dropped once the
/// rebalance timeout has passed (not its much longer session timeout), and the rebalance
/// completes with the members that did join.
#[test]
fn a_member_that_does_not_rejoin_within_the_rebalance_timeout_is_dropped() {
    const REBALANCE_MS: i32 = 2000;
    const SESSION_MS: i32 = 60_000;
    let broker = Broker::start_with(BrokerOptions {
        config_toml: Some("group_initial_rebalance_delay_ms = 0\n".to_string()),
        ..Default::default()
    });
    let group = "rebalance-timeout";
    let mut a = Connection::connect(&broker.addr()).expect("connect");
    let first = join_with_rebalance_timeout(&mut a, 5, group, "", SESSION_MS, REBALANCE_MS);
    assert_eq!(
        first.error_code,
        error_code::MEMBER_ID_REQUIRED,
        "{first:?}"
    );
    let joined =
        join_with_rebalance_timeout(&mut a, 5, group, &first.member_id, SESSION_MS, REBALANCE_MS);
    assert_eq!(joined.error_code, error_code::NONE, "{joined:?}");
    let (gen_a, member_a) = (joined.generation_id, joined.member_id.clone());
    assert_eq!(
        sync(&mut a, group, gen_a, &member_a, true),
        error_code::NONE
    );

    let addr = broker.addr();
    let newcomer = thread::spawn(move || {
        let mut b = Connection::connect(&addr).expect("connect");
        let first = join_with_rebalance_timeout(&mut b, 5, group, "", SESSION_MS, REBALANCE_MS);
        assert_eq!(
            first.error_code,
            error_code::MEMBER_ID_REQUIRED,
            "{first:?}"
        );
        let started = std::time::Instant::now();
        let joined = join_with_rebalance_timeout(
            &mut b,
            5,
            group,
            &first.member_id,
            SESSION_MS,
            REBALANCE_MS,
        );
        (joined, started.elapsed())
    });
    // `a` heartbeats (and so stays alive) but never rejoins.
    let mut codes = Vec::new();
    while !newcomer.is_finished() && codes.len() < 40 {
        codes.push(heartbeat(&mut a, group, gen_a, &member_a));
        thread::sleep(Duration::from_millis(250));
    }
    let (joined, took) = newcomer.join().expect("the newcomer's thread");
    assert!(
        codes.contains(&error_code::REBALANCE_IN_PROGRESS),
        "a's heartbeats during the rebalance: {codes:?}"
    );
    assert_eq!(joined.error_code, error_code::NONE, "{joined:?}");
    assert!(
        took < Duration::from_millis(REBALANCE_MS as u64 + 3000),
        "the rebalance took {took:?}: it waited for the member that did not rejoin longer than \
         the {REBALANCE_MS} ms rebalance timeout"
    );
    assert!(joined.generation_id > gen_a, "{joined:?}");
    let members: Vec<&str> = joined
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    assert_eq!(
        members,
        vec![joined.member_id.as_str()],
        "the member that did not rejoin is out of the new generation"
    );
    assert_eq!(
        heartbeat(&mut a, group, gen_a, &member_a),
        error_code::UNKNOWN_MEMBER_ID,
        "the dropped member's heartbeat"
    );
}

fn listed_groups(conn: &mut Connection) -> Vec<String> {
    let response: ListGroupsResponse = conn
        .request(4, &ListGroupsRequest::default())
        .expect("ListGroups");
    assert_eq!(response.error_code, error_code::NONE, "{response:?}");
    let mut groups: Vec<String> = response.groups.into_iter().map(|g| g.group_id).collect();
    groups.sort();
    groups
}

/// DeleteGroups is durable: after a kill -9 and a restart the deleted group does not come back
/// with its old offsets, while a group that was not deleted keeps them.
#[test]
fn deleted_groups_stay_deleted_after_kill9() {
    let mut broker = Broker::start();
    let topic = "deleted-groups";
    kafka::create_topic(&broker.addr(), topic, 1);
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    for (group, offset) in [("deleted-group", 11), ("kept-group", 22)] {
        assert_eq!(
            commit(&mut conn, group, -1, "", topic, offset),
            error_code::NONE
        );
    }
    assert_eq!(
        listed_groups(&mut conn),
        vec!["deleted-group", "kept-group"]
    );
    let response: DeleteGroupsResponse = conn
        .request(
            2,
            &DeleteGroupsRequest {
                groups_names: vec!["deleted-group".to_string(), "never-existed".to_string()],
            },
        )
        .expect("DeleteGroups");
    let results: Vec<(&str, i16)> = response
        .results
        .iter()
        .map(|r| (r.group_id.as_str(), r.error_code))
        .collect();
    assert_eq!(
        results,
        vec![
            ("deleted-group", error_code::NONE),
            ("never-existed", error_code::GROUP_ID_NOT_FOUND)
        ]
    );
    assert_eq!(committed(&mut conn, "deleted-group", topic), -1);
    broker.kill9();
    broker.restart();
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    assert_eq!(listed_groups(&mut conn), vec!["kept-group"]);
    assert_eq!(
        committed(&mut conn, "deleted-group", topic),
        -1,
        "the deleted group's offset came back after kill -9"
    );
    assert_eq!(committed(&mut conn, "kept-group", topic), 22);
}
