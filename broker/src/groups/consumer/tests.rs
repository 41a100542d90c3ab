use super::*;

const T: TopicId = [7; 16];

fn topics(partitions: i32) -> Topics {
    Topics::from([("t".to_string(), TopicInfo { id: T, partitions })])
}

fn settings() -> ConsumerGroupSettings {
    ConsumerGroupSettings {
        heartbeat_interval: Duration::from_millis(5000),
        session_timeout: Duration::from_millis(45_000),
        max_size: 3,
    }
}

fn join(id: &str) -> Heartbeat {
    Heartbeat {
        member_id: id.to_string(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(vec!["t".to_string()]),
        owned: Some(Assignment::new()),
        api_version: 1,
        ..Default::default()
    }
}

fn beat(id: &str, epoch: i32, owned: Option<&Assignment>) -> Heartbeat {
    Heartbeat {
        member_id: id.to_string(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned: owned.cloned(),
        api_version: 1,
        ..Default::default()
    }
}

fn parts(a: &Assignment) -> BTreeSet<i32> {
    a.get(&T).cloned().unwrap_or_default()
}

struct Fixture {
    group: ConsumerGroup,
    now: Instant,
    topics: Topics,
}

impl Fixture {
    fn new(partitions: i32) -> Self {
        Fixture {
            group: ConsumerGroup::default(),
            now: Instant::now(),
            topics: topics(partitions),
        }
    }

    fn send(&mut self, hb: Heartbeat) -> Result<HeartbeatAnswer, GroupError> {
        self.group
            .heartbeat(hb, self.now, &self.topics, &settings())
    }
}

#[test]
fn a_lone_member_gets_every_partition_at_the_first_epoch() {
    let mut f = Fixture::new(4);
    let a = f.send(join("a")).unwrap();
    assert_eq!(a.member_epoch, 1);
    assert_eq!(a.heartbeat_interval_ms, 5000);
    assert_eq!(parts(&a.assignment.unwrap()), BTreeSet::from([0, 1, 2, 3]));
    assert_eq!(f.group.state(), ConsumerGroupState::Stable);
}

#[test]
fn a_partition_moves_only_after_its_owner_revoked_it() {
    let mut f = Fixture::new(4);
    let a = f.send(join("a")).unwrap();
    let owned_a = a.assignment.unwrap();
    // b joins: the target splits the partitions, but a still holds them all.
    let b = f.send(join("b")).unwrap();
    assert_eq!(b.member_epoch, 2);
    assert!(
        parts(&b.assignment.unwrap()).is_empty(),
        "nothing is free yet"
    );
    assert_eq!(f.group.state(), ConsumerGroupState::Reconciling);
    // a is asked to give up two partitions and keeps its epoch until it has.
    let a = f.send(beat("a", 1, Some(&owned_a))).unwrap();
    assert_eq!(a.member_epoch, 1);
    let kept = a.assignment.unwrap();
    assert_eq!(parts(&kept).len(), 2);
    // b still gets nothing while a has not revoked.
    let b = f.send(beat("b", 2, Some(&Assignment::new()))).unwrap();
    assert!(b.assignment.is_none_or(|x| parts(&x).is_empty()));
    // a reports it owns only what it kept: it moves to epoch 2, and b gets the rest.
    let a = f.send(beat("a", 1, Some(&kept))).unwrap();
    assert_eq!(a.member_epoch, 2);
    let b = f.send(beat("b", 2, None)).unwrap();
    let got_b = parts(&b.assignment.unwrap());
    assert_eq!(got_b.len(), 2);
    assert!(got_b.is_disjoint(&parts(&kept)));
    assert_eq!(f.group.state(), ConsumerGroupState::Stable);
}

#[test]
fn when_a_member_leaves_the_other_takes_everything() {
    let mut f = Fixture::new(2);
    f.send(join("a")).unwrap();
    f.send(join("b")).unwrap();
    let left = f.send(beat("a", LEAVE_GROUP_MEMBER_EPOCH, None)).unwrap();
    assert_eq!(left.member_epoch, -1);
    let b = f.send(beat("b", 2, Some(&Assignment::new()))).unwrap();
    assert_eq!(b.member_epoch, 3);
    assert_eq!(parts(&b.assignment.unwrap()), BTreeSet::from([0, 1]));
}

#[test]
fn epochs_from_the_future_or_unknown_members_are_refused() {
    let mut f = Fixture::new(1);
    f.send(join("a")).unwrap();
    let e = f.send(beat("a", 5, None)).unwrap_err();
    assert_eq!(e.code, error_code::FENCED_MEMBER_EPOCH);
    let e = f.send(beat("zz", 1, None)).unwrap_err();
    assert_eq!(e.code, error_code::UNKNOWN_MEMBER_ID);
    let e = f
        .send(beat("zz", LEAVE_GROUP_MEMBER_EPOCH, None))
        .unwrap_err();
    assert_eq!(e.code, error_code::UNKNOWN_MEMBER_ID);
}

#[test]
fn the_previous_epoch_passes_when_the_member_owns_nothing_new() {
    let mut f = Fixture::new(2);
    f.send(join("a")).unwrap();
    f.send(join("b")).unwrap();
    let a = f.send(beat("a", 1, Some(&Assignment::new()))).unwrap();
    assert_eq!(a.member_epoch, 1, "a must revoke first");
    let kept = a.assignment.unwrap();
    assert_eq!(f.send(beat("a", 1, Some(&kept))).unwrap().member_epoch, 2);
    // The answer was lost: a sends its old epoch again with what it owns.
    assert_eq!(f.send(beat("a", 1, Some(&kept))).unwrap().member_epoch, 2);
}

#[test]
fn joins_are_checked_as_kafka_checks_them() {
    let mut f = Fixture::new(1);
    let mut no_id = join("");
    assert_eq!(
        f.send(no_id.clone()).unwrap_err().code,
        error_code::INVALID_REQUEST
    );
    no_id.api_version = 0;
    let generated = f.send(no_id).unwrap();
    assert!(
        !generated.member_id.is_empty(),
        "v0: the coordinator names the member"
    );
    let mut no_timeout = join("x");
    no_timeout.rebalance_timeout_ms = -1;
    assert_eq!(
        f.send(no_timeout).unwrap_err().code,
        error_code::INVALID_REQUEST
    );
    let mut no_subscription = join("x");
    no_subscription.subscribed_topic_names = None;
    assert_eq!(
        f.send(no_subscription).unwrap_err().code,
        error_code::INVALID_REQUEST
    );
    let mut bad_assignor = join("x");
    bad_assignor.server_assignor = Some("sticky".to_string());
    assert_eq!(
        f.send(bad_assignor).unwrap_err().code,
        error_code::UNSUPPORTED_ASSIGNOR
    );
    let mut static_leave = beat("x", LEAVE_GROUP_STATIC_MEMBER_EPOCH, None);
    static_leave.instance_id = None;
    assert_eq!(
        f.send(static_leave).unwrap_err().code,
        error_code::INVALID_REQUEST
    );
    f.send(join("b")).unwrap();
    f.send(join("c")).unwrap();
    assert_eq!(
        f.send(join("d")).unwrap_err().code,
        error_code::GROUP_MAX_SIZE_REACHED
    );
}

#[test]
fn a_static_member_comes_back_with_its_assignment() {
    let mut f = Fixture::new(2);
    let mut first = join("a1");
    first.instance_id = Some("i".to_string());
    let a = f.send(first).unwrap();
    let epoch = f.group.epoch;
    let mut leave = beat("a1", LEAVE_GROUP_STATIC_MEMBER_EPOCH, None);
    leave.instance_id = Some("i".to_string());
    assert_eq!(f.send(leave).unwrap().member_epoch, -2);
    let mut back = join("a2");
    back.instance_id = Some("i".to_string());
    let again = f.send(back).unwrap();
    assert_eq!(again.member_epoch, a.member_epoch);
    assert_eq!(again.assignment, a.assignment);
    assert_eq!(f.group.epoch, epoch, "no rebalance");
    let mut other = join("a3");
    other.instance_id = Some("i".to_string());
    assert_eq!(
        f.send(other).unwrap_err().code,
        error_code::UNRELEASED_INSTANCE_ID
    );
}

#[test]
fn a_silent_member_is_fenced_after_its_session_timeout() {
    let mut f = Fixture::new(2);
    f.send(join("a")).unwrap();
    f.now += Duration::from_millis(10_000);
    f.send(join("b")).unwrap();
    assert!(!f.group.tick(f.now + Duration::from_millis(30_000)));
    assert!(f.group.tick(f.now + Duration::from_millis(36_000)));
    f.now += Duration::from_millis(36_000);
    let b = f.send(beat("b", 2, Some(&Assignment::new()))).unwrap();
    assert_eq!(parts(&b.assignment.unwrap()), BTreeSet::from([0, 1]));
    assert_eq!(f.group.members().count(), 1);
}

#[test]
fn new_partitions_of_a_subscribed_topic_move_the_group_epoch() {
    let mut f = Fixture::new(1);
    let a = f.send(join("a")).unwrap();
    f.topics = topics(3);
    let a2 = f.send(beat("a", a.member_epoch, None)).unwrap();
    assert_eq!(a2.member_epoch, a.member_epoch + 1);
    assert_eq!(parts(&a2.assignment.unwrap()), BTreeSet::from([0, 1, 2]));
}

#[test]
fn a_regex_subscription_follows_matching_topics() {
    let mut f = Fixture::new(2);
    let mut hb = join("a");
    hb.subscribed_topic_names = None;
    hb.subscribed_topic_regex = Some("^t$".to_string());
    let a = f.send(hb).unwrap();
    assert!(
        parts(&a.assignment.unwrap()).is_empty(),
        "a new regex is resolved after the heartbeat that brings it, as in Kafka"
    );
    let a = f.send(beat("a", a.member_epoch, None)).unwrap();
    assert_eq!(parts(&a.assignment.unwrap()), BTreeSet::from([0, 1]));
    let mut bad = join("b");
    bad.subscribed_topic_regex = Some("(".to_string());
    assert_eq!(
        f.send(bad).unwrap_err().code,
        error_code::INVALID_REGULAR_EXPRESSION
    );
}

#[test]
fn commits_need_the_members_current_epoch() {
    let mut f = Fixture::new(1);
    assert_eq!(
        f.group.validate_commit("", -1, 9),
        Ok(()),
        "empty group: anyone"
    );
    f.send(join("a")).unwrap();
    assert_eq!(f.group.validate_commit("a", 1, 9), Ok(()));
    assert_eq!(
        f.group.validate_commit("a", 0, 9),
        Err(error_code::STALE_MEMBER_EPOCH)
    );
    assert_eq!(
        f.group.validate_commit("x", 1, 9),
        Err(error_code::UNKNOWN_MEMBER_ID)
    );
    assert_eq!(
        f.group.validate_commit("", -1, 9),
        Err(error_code::UNKNOWN_MEMBER_ID)
    );
    assert_eq!(
        f.group.validate_commit("a", 1, 8),
        Err(error_code::UNSUPPORTED_VERSION),
        "a consumer-protocol member commits with v9 or later"
    );
}

#[test]
fn offset_fetches_by_a_member_need_its_current_epoch() {
    let mut f = Fixture::new(1);
    f.send(join("a")).unwrap();
    assert_eq!(
        f.group.validate_offset_fetch(None, -1),
        Ok(()),
        "an admin or a client outside the group"
    );
    assert_eq!(f.group.validate_offset_fetch(Some("a"), 1), Ok(()));
    assert_eq!(
        f.group.validate_offset_fetch(Some("a"), 0),
        Err(error_code::STALE_MEMBER_EPOCH)
    );
    assert_eq!(
        f.group.validate_offset_fetch(Some("x"), 1),
        Err(error_code::UNKNOWN_MEMBER_ID)
    );
    assert_eq!(
        f.group.validate_offset_fetch(None, 1),
        Err(error_code::UNKNOWN_MEMBER_ID)
    );
}

#[test]
fn a_rejoin_without_rebalance_timeout_or_owned_partitions_is_refused_as_kafka_refuses_it() {
    // What librdkafka 2.15.1 sends when subscribe() follows the answer to its leave heartbeat
    // while its join state is still "steady" (compat/FINDINGS.md, 0045): epoch 0 and the new
    // subscription, but neither its rebalance timeout nor its (empty) owned partitions.
    let mut f = Fixture::new(2);
    f.send(join("a")).unwrap();
    f.send(beat("a", LEAVE_GROUP_MEMBER_EPOCH, None)).unwrap();
    let partial = Heartbeat {
        subscribed_topic_names: Some(vec!["t".to_string()]),
        ..beat("a", 0, None)
    };
    let e = f.send(partial.clone()).unwrap_err();
    assert_eq!(e.code, error_code::INVALID_REQUEST);
    assert_eq!(
        e.message,
        "RebalanceTimeoutMs must be provided in first request."
    );
    let e = f
        .send(Heartbeat {
            rebalance_timeout_ms: 30_000,
            ..partial
        })
        .unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            error_code::INVALID_REQUEST,
            "TopicPartitions must be empty when (re-)joining."
        )
    );
    assert!(f.group.is_empty(), "a refused join adds no member");
    // The full join librdkafka sends from its "init" state is served.
    assert_eq!(f.send(join("a")).unwrap().member_epoch, 3);
}
