use super::*;

fn settings(initial_delay_ms: u64) -> GroupSettings {
    GroupSettings {
        min_session_timeout: Duration::from_millis(6_000),
        max_session_timeout: Duration::from_millis(1_800_000),
        initial_rebalance_delay: Duration::from_millis(initial_delay_ms),
    }
}

fn join_req(member_id: &str, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_string(),
        group_instance_id: None,
        client_id: "client".to_string(),
        client_host: "/127.0.0.1".to_string(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".to_string(),
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from(format!("meta-{p}"))))
            .collect(),
        require_known_member_id: true,
    }
}

fn now_value<T>(reply: Reply<T>) -> T {
    match reply {
        Reply::Now(v) => v,
        Reply::Later(_) => panic!("expected an immediate answer"),
    }
}

fn later<T>(reply: Reply<T>) -> oneshot::Receiver<T> {
    match reply {
        Reply::Later(rx) => rx,
        Reply::Now(_) => panic!("expected to wait"),
    }
}

/// The answer, given at once or already sent to the receiver.
fn answered<T>(reply: Reply<T>) -> T {
    match reply {
        Reply::Now(v) => v,
        Reply::Later(mut rx) => ready(&mut rx).expect("answered already"),
    }
}

fn ready<T>(rx: &mut oneshot::Receiver<T>) -> Option<T> {
    rx.try_recv().expect("the group keeps its promise")
}

/// A member id from the MEMBER_ID_REQUIRED round trip.
fn member_id(group: &mut Group, now: Instant, cfg: &GroupSettings) -> String {
    let first = now_value(group.join(join_req("", &["range"]), now, cfg));
    assert_eq!(first.error_code, error_code::MEMBER_ID_REQUIRED);
    assert!(first.member_id.starts_with("client-"));
    first.member_id
}

#[test]
fn first_member_needs_an_id_then_leads_generation_one() {
    let cfg = settings(0);
    let now = Instant::now();
    let mut g = Group::new("g".into());
    let id = member_id(&mut g, now, &cfg);
    let mut rx = later(g.join(join_req(&id, &["range"]), now, &cfg));
    let joined = ready(&mut rx).expect("a lone member completes the join at once");
    assert_eq!(joined.error_code, error_code::NONE);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader, id);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.members.len(), 1);
    assert_eq!(joined.members[0].2, Bytes::from("meta-range"));
    assert_eq!(g.state(), GroupState::CompletingRebalance);
}

#[test]
fn old_join_versions_get_a_member_id_without_a_second_round() {
    let cfg = settings(0);
    let mut g = Group::new("g".into());
    let mut req = join_req("", &["range"]);
    req.require_known_member_id = false;
    let mut rx = later(g.join(req, Instant::now(), &cfg));
    let joined = ready(&mut rx).unwrap();
    assert_eq!(joined.error_code, error_code::NONE);
    assert!(!joined.member_id.is_empty());
}

#[test]
fn leader_assignment_reaches_every_member_and_the_group_becomes_stable() {
    let cfg = settings(0);
    let now = Instant::now();
    let mut g = Group::new("g".into());
    let a = member_id(&mut g, now, &cfg);
    let mut ja = later(g.join(join_req(&a, &["range"]), now, &cfg));
    assert_eq!(ready(&mut ja).unwrap().generation_id, 1);
    // A second member makes the group rebalance; the first learns it from its heartbeat.
    let b = member_id(&mut g, now, &cfg);
    let mut jb = later(g.join(join_req(&b, &["range"]), now, &cfg));
    assert!(
        ready(&mut jb).is_none(),
        "waits for the first member to rejoin"
    );
    assert_eq!(
        g.heartbeat(&a, None, 1, now),
        error_code::REBALANCE_IN_PROGRESS
    );
    let mut ja = later(g.join(join_req(&a, &["range"]), now, &cfg));
    let (ra, rb) = (ready(&mut ja).unwrap(), ready(&mut jb).unwrap());
    assert_eq!((ra.generation_id, rb.generation_id), (2, 2));
    assert_eq!(ra.leader, a, "the leader stays the leader");
    assert_eq!(ra.members.len(), 2);
    assert!(
        rb.members.is_empty(),
        "only the leader sees the subscriptions"
    );

    let mut sb = later(g.sync(&b, None, 2, None, None, vec![], now));
    assert!(ready(&mut sb).is_none(), "a follower waits for the leader");
    let assignments = vec![
        (a.clone(), Bytes::from_static(b"for-a")),
        (b.clone(), Bytes::from_static(b"for-b")),
    ];
    let mut sa = later(g.sync(
        &a,
        None,
        2,
        Some("consumer"),
        Some("range"),
        assignments,
        now,
    ));
    assert_eq!(
        ready(&mut sa).unwrap().assignment,
        Bytes::from_static(b"for-a")
    );
    let rb = ready(&mut sb).unwrap();
    assert_eq!(rb.error_code, error_code::NONE);
    assert_eq!(rb.assignment, Bytes::from_static(b"for-b"));
    assert_eq!(g.state(), GroupState::Stable);
    assert_eq!(g.heartbeat(&b, None, 2, now), error_code::NONE);
    assert_eq!(
        g.heartbeat(&b, None, 1, now),
        error_code::ILLEGAL_GENERATION
    );
    assert_eq!(
        g.heartbeat("nobody", None, 2, now),
        error_code::UNKNOWN_MEMBER_ID
    );
}

/// A Stable group with members `ids` at generation `gen`.
fn stable_group(cfg: &GroupSettings, now: Instant, n: usize) -> (Group, Vec<String>) {
    let mut g = Group::new("g".into());
    let mut ids = Vec::new();
    let mut waiting = Vec::new();
    for _ in 0..n {
        let id = member_id(&mut g, now, cfg);
        ids.push(id.clone());
        // The new member joins (starting a rebalance), then the others rejoin.
        waiting.clear();
        for m in ids.iter().rev() {
            waiting.push(later(g.join(join_req(m, &["range"]), now, cfg)));
        }
    }
    let generation = g.generation();
    let leader = ready(&mut waiting[0]).unwrap().leader;
    let mut synced = later(g.sync(&leader, None, generation, None, None, vec![], now));
    assert_eq!(ready(&mut synced).unwrap().error_code, error_code::NONE);
    assert_eq!(g.state(), GroupState::Stable);
    (g, ids)
}

#[test]
fn a_member_without_heartbeats_is_removed_after_its_session_timeout() {
    let cfg = settings(0);
    let now = Instant::now();
    let (mut g, ids) = stable_group(&cfg, now, 2);
    let generation = g.generation();
    // Only the second member keeps heartbeating.
    let later_time = now + Duration::from_millis(8_000);
    assert_eq!(
        g.heartbeat(&ids[1], None, generation, later_time),
        error_code::NONE
    );
    g.tick(now + Duration::from_millis(10_001), &cfg);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(g.describe_members().len(), 1);
    let mut rx = later(g.join(join_req(&ids[1], &["range"]), later_time, &cfg));
    let joined = ready(&mut rx).unwrap();
    assert_eq!(joined.generation_id, generation + 1);
    assert_eq!(joined.leader, ids[1], "the survivor leads");
}

#[test]
fn members_that_do_not_rejoin_are_dropped_at_the_rebalance_timeout() {
    let cfg = settings(0);
    let now = Instant::now();
    let (mut g, ids) = stable_group(&cfg, now, 2);
    let mut rx = later(g.join(join_req(&ids[0], &["range", "roundrobin"]), now, &cfg));
    assert!(ready(&mut rx).is_none());
    // The other member heartbeats (so its session lives) but never rejoins.
    for ms in [9_000, 18_000, 27_000] {
        let t = now + Duration::from_millis(ms);
        assert_eq!(
            g.heartbeat(&ids[1], None, g.generation(), t),
            error_code::REBALANCE_IN_PROGRESS
        );
        g.tick(t, &cfg);
        assert!(ready(&mut rx).is_none(), "inside the rebalance timeout");
    }
    g.tick(now + Duration::from_millis(30_001), &cfg);
    let joined = ready(&mut rx).unwrap();
    assert_eq!(joined.members.len(), 1);
    assert_eq!(g.describe_members().len(), 1);
}

#[test]
fn the_initial_delay_holds_the_first_rebalance_and_new_members_extend_it() {
    let cfg = settings(3_000);
    let now = Instant::now();
    let mut g = Group::new("g".into());
    let a = member_id(&mut g, now, &cfg);
    let mut ja = later(g.join(join_req(&a, &["range"]), now, &cfg));
    g.tick(now + Duration::from_millis(2_000), &cfg);
    assert!(ready(&mut ja).is_none());
    let t = now + Duration::from_millis(2_000);
    let b = member_id(&mut g, t, &cfg);
    let mut jb = later(g.join(join_req(&b, &["range"]), t, &cfg));
    g.tick(now + Duration::from_millis(4_000), &cfg);
    assert!(ready(&mut ja).is_none(), "b's arrival restarted the delay");
    g.tick(now + Duration::from_millis(5_001), &cfg);
    assert_eq!(ready(&mut ja).unwrap().members.len(), 2);
    assert_eq!(ready(&mut jb).unwrap().generation_id, 1);
}

#[test]
fn the_last_member_leaving_empties_the_group_at_a_new_generation() {
    let cfg = settings(0);
    let now = Instant::now();
    let (mut g, ids) = stable_group(&cfg, now, 1);
    let generation = g.generation();
    assert_eq!(
        g.leave(&[(ids[0].clone(), None), ("ghost".into(), None)], now, &cfg),
        vec![error_code::NONE, error_code::UNKNOWN_MEMBER_ID]
    );
    assert_eq!(g.state(), GroupState::Empty);
    assert_eq!(g.generation(), generation + 1);
    assert!(g.mark_dead().is_ok());
}

#[test]
fn a_group_with_members_cannot_be_deleted() {
    let cfg = settings(0);
    let (mut g, _) = stable_group(&cfg, Instant::now(), 1);
    assert_eq!(g.mark_dead(), Err(error_code::NON_EMPTY_GROUP));
}

#[test]
fn joins_with_other_protocols_or_bad_timeouts_are_refused() {
    let cfg = settings(0);
    let now = Instant::now();
    let (mut g, _) = stable_group(&cfg, now, 1);
    let mut other = join_req("", &["sticky"]);
    other.require_known_member_id = false;
    assert_eq!(
        now_value(g.join(other, now, &cfg)).error_code,
        error_code::INCONSISTENT_GROUP_PROTOCOL
    );
    let mut connect = join_req("", &["range"]);
    connect.protocol_type = "connect".into();
    assert_eq!(
        now_value(g.join(connect, now, &cfg)).error_code,
        error_code::INCONSISTENT_GROUP_PROTOCOL
    );
    let mut short = join_req("", &["range"]);
    short.session_timeout_ms = 100;
    assert_eq!(
        now_value(g.join(short, now, &cfg)).error_code,
        error_code::INVALID_SESSION_TIMEOUT
    );
    assert_eq!(
        now_value(g.join(join_req("stranger", &["range"]), now, &cfg)).error_code,
        error_code::UNKNOWN_MEMBER_ID
    );
}

#[test]
fn the_protocol_most_members_prefer_wins() {
    let cfg = settings(0);
    let now = Instant::now();
    let mut g = Group::new("g".into());
    let mut waiting = Vec::new();
    let prefs: [&[&str]; 3] = [
        &["range", "roundrobin"],
        &["roundrobin", "range"],
        &["roundrobin", "range"],
    ];
    for p in prefs {
        let mut r = join_req("", p);
        r.require_known_member_id = false;
        // With everyone waiting in one join phase: hold it open with an initial delay.
        waiting.push(later(g.join(r, now, &settings(1_000))));
    }
    g.tick(now + Duration::from_millis(1_001), &cfg);
    let joined = ready(&mut waiting[0]).unwrap();
    assert_eq!(joined.protocol_name.as_deref(), Some("roundrobin"));
}

#[test]
fn offset_commits_follow_kafkas_membership_rules() {
    let cfg = settings(0);
    let now = Instant::now();
    let empty = Group::new("g".into());
    assert_eq!(
        empty.validate_commit("", None, -1, 9),
        Ok(()),
        "a simple commit"
    );
    let (mut g, ids) = stable_group(&cfg, now, 1);
    let generation = g.generation();
    assert_eq!(g.validate_commit(&ids[0], None, generation, 9), Ok(()));
    assert_eq!(
        g.validate_commit(&ids[0], None, generation - 1, 9),
        Err(error_code::ILLEGAL_GENERATION)
    );
    assert_eq!(
        g.validate_commit("", None, -1, 9),
        Err(error_code::UNKNOWN_MEMBER_ID),
        "outsiders cannot commit while the group has members"
    );
    // A new member arrives: the group rebalances; once the join completes and before the
    // assignment, commits are refused with REBALANCE_IN_PROGRESS.
    let b = member_id(&mut g, now, &cfg);
    let _jb = later(g.join(join_req(&b, &["range"]), now, &cfg));
    assert_eq!(g.validate_commit(&ids[0], None, generation, 9), Ok(()));
    let _ja = later(g.join(join_req(&ids[0], &["range"]), now, &cfg));
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert_eq!(
        g.validate_commit(&ids[0], None, generation + 1, 9),
        Err(error_code::REBALANCE_IN_PROGRESS)
    );
}

#[test]
fn a_restarted_static_member_fences_its_old_incarnation_without_a_rebalance() {
    let cfg = settings(0);
    let now = Instant::now();
    let mut g = Group::new("g".into());
    let mut static_req = join_req("", &["range"]);
    static_req.group_instance_id = Some("host-1".into());
    let mut rx = later(g.join(static_req.clone(), now, &cfg));
    let old = ready(&mut rx).unwrap();
    let assignment = vec![(old.member_id.clone(), Bytes::from_static(b"mine"))];
    let mut synced = later(g.sync(
        &old.member_id,
        Some("host-1"),
        1,
        None,
        None,
        assignment,
        now,
    ));
    assert_eq!(ready(&mut synced).unwrap().error_code, error_code::NONE);
    assert_eq!(g.state(), GroupState::Stable);

    // The same instance restarts (no member id) while the group is Stable.
    let mut rx = later(g.join(static_req, now, &cfg));
    let new = ready(&mut rx).expect("answered at once, no rebalance");
    assert_eq!(new.error_code, error_code::NONE);
    assert_ne!(new.member_id, old.member_id);
    assert_eq!(new.generation_id, 1, "same generation");
    assert_eq!(
        new.leader, old.member_id,
        "the old leader is named, so it does not assign"
    );
    assert_eq!(g.state(), GroupState::Stable);
    let synced = answered(g.sync(&new.member_id, Some("host-1"), 1, None, None, vec![], now));
    assert_eq!(synced.assignment, Bytes::from_static(b"mine"));
    assert_eq!(
        g.heartbeat(&old.member_id, Some("host-1"), 1, now),
        error_code::FENCED_INSTANCE_ID
    );
    assert_eq!(
        g.heartbeat(&new.member_id, Some("host-1"), 1, now),
        error_code::NONE
    );
}

#[test]
fn shutdown_answers_every_waiting_member() {
    let cfg = settings(60_000);
    let now = Instant::now();
    let mut g = Group::new("g".into());
    let mut r = join_req("", &["range"]);
    r.require_known_member_id = false;
    let mut rx = later(g.join(r, now, &cfg));
    assert!(ready(&mut rx).is_none());
    g.shutdown();
    assert_eq!(
        ready(&mut rx).unwrap().error_code,
        error_code::NOT_COORDINATOR
    );
}

/// A ConsumerProtocolSubscription v0 for `topics`.
fn subscription(topics: &[&str]) -> Bytes {
    let mut b = vec![0u8, 0];
    b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        b.extend_from_slice(&(t.len() as i16).to_be_bytes());
        b.extend_from_slice(t.as_bytes());
    }
    b.extend_from_slice(&(-1i32).to_be_bytes()); // null user data
    Bytes::from(b)
}

#[test]
fn offsets_of_topics_the_members_subscribe_to_cannot_be_deleted() {
    assert_eq!(
        subscribed_topics(&subscription(&["a", "bb"])),
        Some(vec!["a".to_string(), "bb".to_string()])
    );
    assert_eq!(subscribed_topics(b"\0\0\0\0\0\x09"), None, "truncated");
    let cfg = settings(0);
    let now = Instant::now();
    let mut g = Group::new("g".into());
    assert_eq!(g.check_offset_delete("a"), Ok(()), "an empty group");
    let mut req = join_req("", &[]);
    req.protocols = vec![("range".into(), subscription(&["a"]))];
    req.require_known_member_id = false;
    let mut rx = later(g.join(req, now, &cfg));
    assert_eq!(ready(&mut rx).unwrap().error_code, error_code::NONE);
    assert_eq!(
        g.check_offset_delete("a"),
        Err(error_code::GROUP_SUBSCRIBED_TO_TOPIC)
    );
    assert_eq!(g.check_offset_delete("other"), Ok(()));
}

#[test]
fn a_commit_without_generation_to_an_empty_group_is_accepted_whatever_member_it_names() {
    // Kafka's rule; librdkafka's consumer-protocol clients name their member id in such commits.
    let g = Group::new("g".to_string());
    assert_eq!(g.validate_commit("", None, -1, 9), Ok(()));
    assert_eq!(g.validate_commit("a-member-id", None, -1, 9), Ok(()));
    assert_eq!(
        g.validate_commit("a-member-id", None, 3, 9),
        Err(error_code::UNKNOWN_MEMBER_ID)
    );
}
