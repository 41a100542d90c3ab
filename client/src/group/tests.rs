use riffle_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use riffle_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};

use super::*;

const S: u64 = 1_000_000_000;

fn cfg() -> Arc<MemberConfig> {
    Arc::new(MemberConfig {
        group: "g".into(),
        topic: "t".into(),
        start_offsets: vec![(0, 100), (1, 200), (2, 300)],
        versions: GroupVersions {
            find_coordinator: 3,
            join_group: 9,
            sync_group: 5,
            heartbeat: 4,
            leave_group: 5,
            offset_commit: 8,
            offset_fetch: 7,
        },
        session_timeout_ms: SESSION_TIMEOUT_MS,
        rebalance_timeout_ms: REBALANCE_TIMEOUT_MS,
        heartbeat_interval_ns: 3 * S,
        commit_interval_ns: S,
    })
}

fn poll(m: &mut GroupMember, now_ns: u64) -> Option<GroupRequest> {
    m.poll(now_ns, false, true, || vec![(0, 7), (1, 8)])
}

fn joined(member_id: &str, leader: &str, members: &[(&str, &[&str])]) -> GroupResponse {
    GroupResponse::Join(JoinGroupResponse {
        generation_id: 4,
        protocol_name: Some(RANGE.into()),
        leader: leader.into(),
        member_id: member_id.into(),
        members: members
            .iter()
            .map(|(id, topics)| JoinGroupResponseMember {
                member_id: id.to_string(),
                group_instance_id: None,
                metadata: Subscription {
                    topics: topics.iter().map(|t| t.to_string()).collect(),
                    user_data: None,
                }
                .encode(),
            })
            .collect(),
        ..Default::default()
    })
}

fn synced(partitions: &[i32]) -> GroupResponse {
    GroupResponse::Sync(SyncGroupResponse {
        assignment: Assignment {
            partitions: vec![("t".into(), partitions.to_vec())],
            user_data: None,
        }
        .encode(),
        ..Default::default()
    })
}

fn offsets(committed: &[(i32, i64)]) -> GroupResponse {
    GroupResponse::OffsetFetch(OffsetFetchResponse {
        topics: vec![OffsetFetchResponseTopic {
            name: "t".into(),
            partitions: committed
                .iter()
                .map(
                    |&(partition_index, committed_offset)| OffsetFetchResponsePartition {
                        partition_index,
                        committed_offset,
                        ..Default::default()
                    },
                )
                .collect(),
        }],
        ..Default::default()
    })
}

fn code(api: GroupApi, error_code: i16) -> GroupResponse {
    match api {
        GroupApi::Heartbeat => GroupResponse::Heartbeat(HeartbeatResponse {
            error_code,
            ..Default::default()
        }),
        GroupApi::OffsetCommit => GroupResponse::OffsetCommit(OffsetCommitResponse {
            topics: vec![OffsetCommitResponseTopic {
                name: "t".into(),
                partitions: vec![OffsetCommitResponsePartition {
                    partition_index: 0,
                    error_code,
                }],
            }],
            ..Default::default()
        }),
        GroupApi::Leave => GroupResponse::Leave(LeaveGroupResponse {
            error_code,
            ..Default::default()
        }),
        _ => unreachable!("not used by the tests"),
    }
}

/// A member that joined as the group's only member ("m1", generation 4) and holds
/// partitions 0 and 1 of "t", at time 10 s.
fn stable_member() -> GroupMember {
    let mut m = GroupMember::new(cfg());
    assert!(matches!(poll(&mut m, 0), Some(GroupRequest::Join(_))));
    m.on_response(0, joined("m1", "m1", &[("m1", &["t"])]))
        .unwrap();
    assert!(matches!(poll(&mut m, 0), Some(GroupRequest::Sync(_))));
    m.on_response(0, synced(&[0, 1])).unwrap();
    assert!(matches!(
        poll(&mut m, 0),
        Some(GroupRequest::OffsetFetch(_))
    ));
    let a = m.on_response(10 * S, offsets(&[(0, 7), (1, -1)])).unwrap();
    assert_eq!(a.unwrap().positions, vec![(0, 7), (1, 200)]);
    assert!(m.assigned());
    m
}

#[test]
fn new_member_rejoins_with_the_id_the_coordinator_requires() {
    let mut m = GroupMember::new(cfg());
    let Some(GroupRequest::Join(j)) = poll(&mut m, 0) else {
        panic!("a new member joins first");
    };
    assert_eq!(j.member_id, "");
    assert_eq!(j.protocol_type, "consumer");
    assert_eq!(j.protocols[0].name, "range");
    let s = Subscription::decode(&j.protocols[0].metadata).unwrap();
    assert_eq!(s.topics, vec!["t".to_string()]);
    assert_eq!(
        poll(&mut m, 0).map(|r| r.api()),
        None,
        "one request in flight"
    );
    let required = JoinGroupResponse {
        error_code: error_code::MEMBER_ID_REQUIRED,
        member_id: "m1".into(),
        ..Default::default()
    };
    assert_eq!(m.on_response(0, GroupResponse::Join(required)), Ok(None));
    let Some(GroupRequest::Join(j)) = poll(&mut m, 0) else {
        panic!("rejoins at once");
    };
    assert_eq!(j.member_id, "m1");
}

#[test]
fn leader_sends_every_member_its_range_and_starts_from_committed_offsets() {
    let mut m = GroupMember::new(cfg());
    poll(&mut m, 0);
    m.on_response(0, joined("m1", "m1", &[("m2", &["t"]), ("m1", &["t"])]))
        .unwrap();
    let Some(GroupRequest::Sync(sync)) = poll(&mut m, 0) else {
        panic!("syncs after the join");
    };
    assert_eq!(sync.generation_id, 4);
    let of = |id: &str| {
        let a = sync.assignments.iter().find(|a| a.member_id == id).unwrap();
        Assignment::decode(&a.assignment).unwrap().of_topic("t")
    };
    assert_eq!((of("m1"), of("m2")), (vec![0, 1], vec![2]));
    m.on_response(0, synced(&[0, 1])).unwrap();
    let Some(GroupRequest::OffsetFetch(f)) = poll(&mut m, 0) else {
        panic!("fetches the committed offsets");
    };
    assert_eq!(f.topics.unwrap()[0].partition_indexes, vec![0, 1]);
    let a = m
        .on_response(0, offsets(&[(0, 42), (1, -1)]))
        .unwrap()
        .unwrap();
    assert_eq!(a.positions, vec![(0, 42), (1, 200)], "-1: the run's start");
    assert_eq!((a.generation, a.committed, a.leader), (4, 1, true));
}

#[test]
fn follower_sends_no_assignment_and_an_empty_share_is_stable() {
    let mut m = GroupMember::new(cfg());
    poll(&mut m, 0);
    m.on_response(0, joined("m2", "m1", &[])).unwrap();
    let Some(GroupRequest::Sync(sync)) = poll(&mut m, 0) else {
        panic!("syncs after the join");
    };
    assert!(sync.assignments.is_empty());
    let empty = GroupResponse::Sync(SyncGroupResponse::default());
    let a = m.on_response(0, empty).unwrap().unwrap();
    assert!(a.positions.is_empty() && !a.leader);
    assert!(m.assigned());
}

#[test]
fn stable_member_heartbeats_and_commits_on_schedule() {
    let mut m = stable_member();
    assert_eq!(m.next_due_ns(), Some(11 * S));
    assert!(poll(&mut m, 10 * S).is_none());
    let Some(GroupRequest::OffsetCommit(c)) = poll(&mut m, 11 * S) else {
        panic!("commits each second");
    };
    assert_eq!(
        (c.generation_id_or_member_epoch, c.member_id.as_str()),
        (4, "m1")
    );
    let committed: Vec<_> = c.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset))
        .collect();
    assert_eq!(committed, vec![(0, 7), (1, 8)]);
    m.on_response(11 * S, code(GroupApi::OffsetCommit, 0))
        .unwrap();
    let Some(GroupRequest::Heartbeat(h)) = poll(&mut m, 13 * S) else {
        panic!("heartbeats every third of the session timeout");
    };
    assert_eq!((h.generation_id, h.member_id.as_str()), (4, "m1"));
    m.on_response(13 * S, code(GroupApi::Heartbeat, 0)).unwrap();
    assert!(m.assigned());
}

#[test]
fn rebalance_stops_fetching_commits_once_fetches_end_then_rejoins() {
    let mut m = stable_member();
    assert!(matches!(
        poll(&mut m, 13 * S),
        Some(GroupRequest::Heartbeat(_))
    ));
    let rebalance = code(GroupApi::Heartbeat, error_code::REBALANCE_IN_PROGRESS);
    m.on_response(13 * S, rebalance).unwrap();
    assert!(!m.assigned(), "no fetching during the rebalance");
    assert!(m.poll(13 * S, false, false, Vec::new).is_none());
    let Some(GroupRequest::OffsetCommit(c)) = poll(&mut m, 13 * S) else {
        panic!("commits what was consumed before rejoining");
    };
    assert_eq!(c.generation_id_or_member_epoch, 4);
    m.on_response(13 * S, code(GroupApi::OffsetCommit, 0))
        .unwrap();
    let Some(GroupRequest::Join(j)) = poll(&mut m, 13 * S) else {
        panic!("rejoins");
    };
    assert_eq!(j.member_id, "m1");
}

#[test]
fn unknown_member_forgets_its_id_and_illegal_generation_keeps_it() {
    let mut m = stable_member();
    poll(&mut m, 13 * S);
    m.on_response(
        13 * S,
        code(GroupApi::Heartbeat, error_code::ILLEGAL_GENERATION),
    )
    .unwrap();
    let Some(GroupRequest::Join(j)) = poll(&mut m, 13 * S) else {
        panic!("rejoins without a commit");
    };
    assert_eq!(j.member_id, "m1");

    let mut m = stable_member();
    poll(&mut m, 13 * S);
    m.on_response(
        13 * S,
        code(GroupApi::Heartbeat, error_code::UNKNOWN_MEMBER_ID),
    )
    .unwrap();
    let Some(GroupRequest::Join(j)) = poll(&mut m, 13 * S) else {
        panic!("rejoins");
    };
    assert_eq!(j.member_id, "");
}

#[test]
fn end_of_run_commits_after_the_last_fetch_then_leaves() {
    let mut m = stable_member();
    assert!(m.poll(20 * S, true, false, Vec::new).is_none());
    let Some(GroupRequest::OffsetCommit(_)) = m.poll(20 * S, true, true, || vec![(0, 9)]) else {
        panic!("final commit");
    };
    m.on_response(20 * S, code(GroupApi::OffsetCommit, 0))
        .unwrap();
    let Some(GroupRequest::Leave(l)) = m.poll(20 * S, true, true, Vec::new) else {
        panic!("leaves");
    };
    assert_eq!(
        (l.member_id.as_str(), l.members[0].member_id.as_str()),
        ("", "m1")
    );
    assert!(!m.done());
    m.on_response(20 * S, code(GroupApi::Leave, 0)).unwrap();
    assert!(m.done());
}

#[test]
fn end_of_run_during_a_join_gives_up_at_once() {
    let mut m = GroupMember::new(cfg());
    poll(&mut m, 0);
    assert!(m.poll(5 * S, true, true, Vec::new).is_none());
    assert!(m.done());
}

#[test]
fn lost_coordinator_connection_rejoins_after_a_backoff() {
    let mut m = stable_member();
    m.on_disconnect(12 * S, false);
    assert!(!m.assigned());
    // Still in the generation: commit first, then join once the backoff is over.
    assert!(matches!(
        poll(&mut m, 12 * S),
        Some(GroupRequest::OffsetCommit(_))
    ));
    m.on_response(12 * S, code(GroupApi::OffsetCommit, 0))
        .unwrap();
    assert!(poll(&mut m, 12 * S).is_none());
    assert!(matches!(poll(&mut m, 13 * S), Some(GroupRequest::Join(_))));
}

#[test]
fn unexpected_errors_are_reported() {
    let mut m = GroupMember::new(cfg());
    poll(&mut m, 0);
    let failed = JoinGroupResponse {
        error_code: error_code::INVALID_GROUP_ID,
        ..Default::default()
    };
    assert!(m.on_response(0, GroupResponse::Join(failed)).is_err());
    assert!(poll(&mut m, 0).is_none(), "retries after a backoff");
    assert!(matches!(
        poll(&mut m, GROUP_RETRY_BACKOFF_NS),
        Some(GroupRequest::Join(_))
    ));
}
