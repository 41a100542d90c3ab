//! Manual replica assignments of CreateTopics and CreatePartitions, checked as Kafka's KRaft
//! controller checks them (its error codes and messages). On a single node the only broker that
//! can be named is this node; the partitions are then placed on shards as usual.

use riffle_protocol::error_code;

/// A refused assignment: the Kafka error code and the message clients see.
pub type Refusal = (i16, String);

fn invalid(message: String) -> Refusal {
    (error_code::INVALID_REPLICA_ASSIGNMENT, message)
}

/// Checks one partition's replica list against the registered brokers and the replication factor
/// of the partitions before it (Kafka's `validateManualPartitionAssignment`).
fn check_replicas(
    broker_ids: &[i32],
    registered: &[i32],
    replication_factor: Option<usize>,
) -> Result<(), Refusal> {
    if broker_ids.is_empty() {
        return Err(invalid(
            "The manual partition assignment includes an empty replica list.".into(),
        ));
    }
    for (i, id) in broker_ids.iter().enumerate() {
        if !registered.contains(id) {
            return Err(invalid(format!(
                "The manual partition assignment includes broker {id}, but no such broker is registered."
            )));
        }
        if broker_ids[..i].contains(id) {
            return Err(invalid(format!(
                "The manual partition assignment includes the broker {id} more than once."
            )));
        }
    }
    match replication_factor {
        Some(rf) if rf != broker_ids.len() => Err(invalid(format!(
            "The manual partition assignment includes a partition with {} replica(s), but this is \
             not consistent with previous partitions, which have {rf} replica(s).",
            broker_ids.len()
        ))),
        _ => Ok(()),
    }
}

/// CreateTopics with assignments `(partition_index, broker_ids)`: the number of partitions to
/// create. Kafka wants `num_partitions` and `replication_factor` left at -1 with an assignment.
pub fn partitions_of_new_topic(
    num_partitions: i32,
    replication_factor: i16,
    assignments: &[(i32, Vec<i32>)],
    registered: &[i32],
) -> Result<i32, Refusal> {
    if replication_factor != -1 {
        return Err((
            error_code::INVALID_REQUEST,
            "A manual partition assignment was specified, but replication factor was not set to -1."
                .into(),
        ));
    }
    if num_partitions != -1 {
        return Err((
            error_code::INVALID_REQUEST,
            "A manual partition assignment was specified, but numPartitions was not set to -1."
                .into(),
        ));
    }
    let mut seen: Vec<i32> = Vec::with_capacity(assignments.len());
    for (index, broker_ids) in assignments {
        if seen.contains(index) {
            return Err(invalid(format!(
                "Found multiple manual partition assignments for partition {index}"
            )));
        }
        let rf = assignments.first().map(|(_, ids)| ids.len());
        check_replicas(broker_ids, registered, rf.filter(|_| !seen.is_empty()))?;
        seen.push(*index);
    }
    seen.sort_unstable();
    if seen
        .iter()
        .enumerate()
        .any(|(i, p)| i64::from(*p) != i as i64)
    {
        return Err(invalid(
            "Partitions should be a consecutive 0-based integer sequence".into(),
        ));
    }
    i32::try_from(seen.len()).map_err(|_| invalid("too many partitions".into()))
}

/// CreatePartitions growing a topic of `current` partitions with `current_replicas` replicas
/// each to `count`, with one replica list per added partition.
pub fn check_added_partitions(
    current: i32,
    current_replicas: usize,
    count: i32,
    assignments: &[Vec<i32>],
    registered: &[i32],
) -> Result<(), Refusal> {
    let added = i64::from(count) - i64::from(current);
    if added > 0 && assignments.len() as i64 != added {
        return Err(invalid(format!(
            "Attempted to add {added} additional partition(s), but only {} assignment(s) were specified.",
            assignments.len()
        )));
    }
    assignments
        .iter()
        .try_for_each(|ids| check_replicas(ids, registered, Some(current_replicas)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &[i32] = &[0];

    #[test]
    fn an_assignment_naming_this_node_creates_its_partitions() {
        let a = [(1, vec![0]), (0, vec![0]), (2, vec![0])];
        assert_eq!(partitions_of_new_topic(-1, -1, &a, NODE), Ok(3));
        assert_eq!(
            check_added_partitions(3, 1, 5, &[vec![0], vec![0]], NODE),
            Ok(())
        );
    }

    #[test]
    fn assignments_kafka_refuses_are_refused_with_its_codes() {
        let code = |r: Result<i32, Refusal>| r.unwrap_err().0;
        let one = [(0, vec![0])];
        assert_eq!(
            code(partitions_of_new_topic(1, -1, &one, NODE)),
            error_code::INVALID_REQUEST
        );
        assert_eq!(
            code(partitions_of_new_topic(-1, 1, &one, NODE)),
            error_code::INVALID_REQUEST
        );
        let cases: [&[(i32, Vec<i32>)]; 5] = [
            &[(0, vec![1])],
            &[(0, vec![])],
            &[(0, vec![0, 0])],
            &[(0, vec![0]), (0, vec![0])],
            &[(0, vec![0]), (2, vec![0])],
        ];
        for a in cases {
            let (code, message) = partitions_of_new_topic(-1, -1, a, NODE).unwrap_err();
            assert_eq!(
                code,
                error_code::INVALID_REPLICA_ASSIGNMENT,
                "{a:?}: {message}"
            );
        }
        let (_, message) = partitions_of_new_topic(-1, -1, &[(0, vec![7])], NODE).unwrap_err();
        assert!(message.contains("broker 7"), "{message}");
        let (code, message) = check_added_partitions(1, 1, 3, &[vec![0]], NODE).unwrap_err();
        assert_eq!(code, error_code::INVALID_REPLICA_ASSIGNMENT);
        assert!(
            message.contains("add 2 additional partition(s)"),
            "{message}"
        );
        assert!(check_added_partitions(1, 1, 2, &[vec![3]], NODE).is_err());
        assert!(check_added_partitions(1, 1, 2, &[vec![0, 0]], NODE).is_err());
    }
}
