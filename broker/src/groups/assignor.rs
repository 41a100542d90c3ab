//! The server-side assignors of KIP-848 consumer groups: from the members' subscriptions and the
//! subscribed topics' partition counts to a target assignment. Pure functions: the consumer group
//! calls them when its group epoch moves past its assignment epoch.

use std::collections::{BTreeMap, BTreeSet};

/// Kafka's 16-byte topic id.
pub type TopicId = [u8; 16];

/// Partitions by topic id, as the consumer protocol names them.
pub type Assignment = BTreeMap<TopicId, BTreeSet<i32>>;

/// A server-side assignor (`ServerAssignor` of ConsumerGroupHeartbeat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    /// Balanced and sticky: every member gets as many partitions as any other, within one, and
    /// keeps what it had where that allows.
    Uniform,
    /// Per topic, each subscribed member gets a contiguous range of its partitions (members in
    /// id order), as the classic range assignor does.
    Range,
}

impl Assignor {
    /// Every assignor served; the first is the default (Kafka's `group.consumer.assignors`).
    pub const ALL: [Assignor; 2] = [Assignor::Uniform, Assignor::Range];

    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }

    pub fn from_name(name: &str) -> Option<Assignor> {
        Assignor::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The target assignment: `subscriptions` are each member's subscribed topic ids, `partitions`
    /// the partition count of each subscribed topic, `previous` the last target (the uniform
    /// assignor keeps what it can of it). Every member is in the result, maybe with nothing.
    pub fn assign(
        self,
        subscriptions: &BTreeMap<String, BTreeSet<TopicId>>,
        partitions: &BTreeMap<TopicId, i32>,
        previous: &BTreeMap<String, Assignment>,
    ) -> BTreeMap<String, Assignment> {
        match self {
            Assignor::Uniform => uniform(subscriptions, partitions, previous),
            Assignor::Range => range(subscriptions, partitions),
        }
    }
}

fn empty_for(subscriptions: &BTreeMap<String, BTreeSet<TopicId>>) -> BTreeMap<String, Assignment> {
    subscriptions
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect()
}

fn range(
    subscriptions: &BTreeMap<String, BTreeSet<TopicId>>,
    partitions: &BTreeMap<TopicId, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out = empty_for(subscriptions);
    for (topic, count) in partitions {
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if members.is_empty() {
            continue;
        }
        let count = (*count).max(0);
        let per = count / members.len() as i32;
        let extra = count % members.len() as i32;
        let mut start = 0;
        for (i, member) in members.into_iter().enumerate() {
            let len = per + i32::from((i as i32) < extra);
            if len > 0 {
                let owned = out.get_mut(member).expect("every member is in the result");
                owned.insert(*topic, (start..start + len).collect());
            }
            start += len;
        }
        debug_assert_eq!(start, count, "range gives out every partition once");
    }
    out
}

fn uniform(
    subscriptions: &BTreeMap<String, BTreeSet<TopicId>>,
    partitions: &BTreeMap<TopicId, i32>,
    previous: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    let mut out = empty_for(subscriptions);
    if subscriptions.is_empty() {
        return out;
    }
    let subscribed = |member: &str, topic: &TopicId| {
        subscriptions
            .get(member)
            .is_some_and(|topics| topics.contains(topic))
    };
    let all: Vec<(TopicId, i32)> = partitions
        .iter()
        .filter(|(topic, _)| subscriptions.values().any(|s| s.contains(*topic)))
        .flat_map(|(topic, count)| (0..(*count).max(0)).map(move |p| (*topic, p)))
        .collect();
    let quota = all.len().div_ceil(subscriptions.len());
    let mut count: BTreeMap<String, usize> = subscriptions.keys().map(|m| (m.clone(), 0)).collect();
    let mut taken: BTreeSet<(TopicId, i32)> = BTreeSet::new();
    // Sticky: previous owners keep their partitions, up to the quota.
    for (member, owned) in previous {
        for (topic, parts) in owned {
            for p in parts {
                let exists = partitions.get(topic).is_some_and(|c| p < c);
                let n = count.get(member).copied().unwrap_or(usize::MAX);
                if exists && subscribed(member, topic) && n < quota && taken.insert((*topic, *p)) {
                    give(&mut out, &mut count, member, *topic, *p);
                }
            }
        }
    }
    // The rest: each to the least loaded member subscribed to its topic.
    for (topic, p) in all {
        if taken.contains(&(topic, p)) {
            continue;
        }
        let least = count
            .iter()
            .filter(|(m, _)| subscribed(m, &topic))
            .min_by_key(|(_, n)| **n)
            .map(|(m, _)| m.clone());
        if let Some(member) = least {
            taken.insert((topic, p));
            give(&mut out, &mut count, &member, topic, p);
        }
    }
    balance(&mut out, &mut count, &subscribed);
    out
}

fn give(
    out: &mut BTreeMap<String, Assignment>,
    count: &mut BTreeMap<String, usize>,
    member: &str,
    topic: TopicId,
    partition: i32,
) {
    let owned = out.get_mut(member).expect("members are in the result");
    owned.entry(topic).or_default().insert(partition);
    *count.get_mut(member).expect("members are counted") += 1;
}

/// Moves partitions from the most loaded members to the least loaded ones that subscribe to their
/// topic until no two members differ by more than one where a move is possible. Each move lowers
/// the sum of squared counts, so this ends; the bound is a guard.
fn balance(
    out: &mut BTreeMap<String, Assignment>,
    count: &mut BTreeMap<String, usize>,
    subscribed: &dyn Fn(&str, &TopicId) -> bool,
) {
    let total: usize = count.values().sum();
    for _ in 0..=total * count.len() {
        let mut moved = false;
        let mut by_load: Vec<(String, usize)> =
            count.iter().map(|(m, n)| (m.clone(), *n)).collect();
        by_load.sort_by_key(|(m, n)| (std::cmp::Reverse(*n), m.clone()));
        'search: for (from, n_from) in &by_load {
            for (to, n_to) in by_load.iter().rev() {
                if *n_from <= n_to + 1 {
                    break;
                }
                let candidate = out[from]
                    .iter()
                    .filter(|(topic, _)| subscribed(to, topic))
                    .find_map(|(topic, parts)| parts.last().map(|p| (*topic, *p)));
                if let Some((topic, p)) = candidate {
                    let source = out.get_mut(from).expect("a member");
                    let parts = source.get_mut(&topic).expect("just found");
                    parts.remove(&p);
                    if parts.is_empty() {
                        source.remove(&topic);
                    }
                    *count.get_mut(from).expect("a member") -= 1;
                    give(out, count, to, topic, p);
                    moved = true;
                    break 'search;
                }
            }
        }
        if !moved {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: TopicId = [1; 16];
    const T2: TopicId = [2; 16];

    fn subs(members: &[(&str, &[TopicId])]) -> BTreeMap<String, BTreeSet<TopicId>> {
        members
            .iter()
            .map(|(m, t)| (m.to_string(), t.iter().copied().collect()))
            .collect()
    }

    fn sizes(a: &BTreeMap<String, Assignment>) -> Vec<usize> {
        a.values()
            .map(|owned| owned.values().map(BTreeSet::len).sum())
            .collect()
    }

    /// Every partition of the subscribed topics is given to exactly one member subscribed to it.
    fn assert_complete(
        a: &BTreeMap<String, Assignment>,
        s: &BTreeMap<String, BTreeSet<TopicId>>,
        partitions: &BTreeMap<TopicId, i32>,
    ) {
        let mut seen = BTreeSet::new();
        for (member, owned) in a {
            for (topic, parts) in owned {
                assert!(
                    s[member].contains(topic),
                    "{member} got an unsubscribed topic"
                );
                for p in parts {
                    assert!(seen.insert((*topic, *p)), "partition {p} given twice");
                }
            }
        }
        let expected: usize = partitions
            .iter()
            .filter(|(t, _)| s.values().any(|x| x.contains(*t)))
            .map(|(_, c)| *c as usize)
            .sum();
        assert_eq!(seen.len(), expected);
    }

    #[test]
    fn range_gives_each_member_a_contiguous_range_per_topic() {
        let s = subs(&[("a", &[T1, T2]), ("b", &[T1, T2])]);
        let partitions = BTreeMap::from([(T1, 5), (T2, 2)]);
        let a = Assignor::Range.assign(&s, &partitions, &BTreeMap::new());
        assert_eq!(a["a"][&T1], BTreeSet::from([0, 1, 2]));
        assert_eq!(a["b"][&T1], BTreeSet::from([3, 4]));
        assert_eq!(a["a"][&T2], BTreeSet::from([0]));
        assert_eq!(a["b"][&T2], BTreeSet::from([1]));
        assert_complete(&a, &s, &partitions);
    }

    #[test]
    fn uniform_balances_within_one_partition() {
        let s = subs(&[("a", &[T1, T2]), ("b", &[T1, T2]), ("c", &[T1, T2])]);
        let partitions = BTreeMap::from([(T1, 4), (T2, 3)]);
        let a = Assignor::Uniform.assign(&s, &partitions, &BTreeMap::new());
        let mut n = sizes(&a);
        n.sort();
        assert_eq!(n, vec![2, 2, 3]);
        assert_complete(&a, &s, &partitions);
    }

    #[test]
    fn uniform_keeps_what_members_had_when_one_joins() {
        let partitions = BTreeMap::from([(T1, 4)]);
        let two = subs(&[("a", &[T1]), ("b", &[T1])]);
        let first = Assignor::Uniform.assign(&two, &partitions, &BTreeMap::new());
        let three = subs(&[("a", &[T1]), ("b", &[T1]), ("c", &[T1])]);
        let second = Assignor::Uniform.assign(&three, &partitions, &first);
        assert_complete(&second, &three, &partitions);
        for m in ["a", "b"] {
            let kept = second[m][&T1].is_subset(&first[m][&T1]);
            assert!(kept, "{m} only keeps partitions it had");
        }
        assert_eq!(sizes(&second).iter().sum::<usize>(), 4);
        assert_eq!(second["c"].values().map(BTreeSet::len).sum::<usize>(), 1);
    }

    #[test]
    fn uniform_respects_different_subscriptions() {
        let s = subs(&[("a", &[T1]), ("b", &[T1, T2])]);
        let partitions = BTreeMap::from([(T1, 2), (T2, 2)]);
        let a = Assignor::Uniform.assign(&s, &partitions, &BTreeMap::new());
        assert_complete(&a, &s, &partitions);
        assert_eq!(sizes(&a), vec![2, 2]);
        assert_eq!(a["a"][&T1], BTreeSet::from([0, 1]));
    }

    #[test]
    fn a_member_alone_gets_everything_and_nobody_gets_unsubscribed_topics() {
        let s = subs(&[("a", &[T1])]);
        let partitions = BTreeMap::from([(T1, 3), (T2, 3)]);
        for assignor in Assignor::ALL {
            let a = assignor.assign(&s, &partitions, &BTreeMap::new());
            assert_eq!(a["a"].len(), 1, "{}", assignor.name());
            assert_complete(&a, &s, &partitions);
        }
    }

    #[test]
    fn assignors_are_found_by_their_kafka_names() {
        assert_eq!(Assignor::from_name("uniform"), Some(Assignor::Uniform));
        assert_eq!(Assignor::from_name("range"), Some(Assignor::Range));
        assert_eq!(Assignor::from_name("sticky"), None);
    }
}
