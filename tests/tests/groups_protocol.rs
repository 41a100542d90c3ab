//! Consumer-group rules a client only sees as error codes and coordinator addresses:
//! FindCoordinator names this broker for a group, JoinGroup refuses session timeouts outside
//! group_min/max_session_timeout_ms (Kafka's 6000..1800000 by default), and from v4 on a first
//! JoinGroup without a member id is answered MEMBER_ID_REQUIRED with the id to rejoin with.

use riffle_protocol::error_code;
use riffle_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use riffle_protocol::messages::{
    FindCoordinatorRequest, FindCoordinatorResponse, JoinGroupRequest, JoinGroupResponse,
};
use riffle_tests::kafka::Connection;
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
    conn.request(
        version,
        &JoinGroupRequest {
            group_id: group.to_string(),
            session_timeout_ms,
            rebalance_timeout_ms: session_timeout_ms,
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
