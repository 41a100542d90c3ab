//! DescribeTopicPartitions (KIP-966): topics and their partitions from the metadata image, in
//! name order, a page of at most `response_partition_limit` partitions at a time; the response's
//! cursor says where the next page starts, as Kafka pages it.

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use riffle_protocol::messages::{DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse};

use crate::authorized_operations;
use crate::metadata::image::{MetadataImage, TopicMeta};
use crate::shard::Shard;

/// Most partitions in one response, whatever the request asks (Kafka's
/// `max.request.partition.size.limit` default).
const MAX_PARTITIONS_PER_RESPONSE: i32 = 2000;

pub fn handle(
    shard: &Rc<Shard>,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let names: Vec<String> = request.topics.into_iter().map(|t| t.name).collect();
    let limit = request
        .response_partition_limit
        .clamp(1, MAX_PARTITIONS_PER_RESPONSE) as usize;
    let start = request.cursor.map(|c| (c.topic_name, c.partition_index));
    let (topics, next_cursor) = page(&shard.image(), names, limit, start);
    DescribeTopicPartitionsResponse {
        topics,
        next_cursor,
        ..Default::default()
    }
}

/// One page: the topics asked for (every topic when none is named), sorted by name, from the
/// cursor's topic and partition on, until `limit` partitions are listed.
fn page(
    image: &MetadataImage,
    mut names: Vec<String>,
    limit: usize,
    start: Option<(String, i32)>,
) -> (Vec<DescribeTopicPartitionsResponseTopic>, Option<Cursor>) {
    if names.is_empty() {
        names = image.topics.keys().cloned().collect();
    }
    names.sort();
    names.dedup();
    let (first_topic, first_partition) = start.unwrap_or_default();
    let mut left = limit;
    let mut topics = Vec::new();
    for name in names.into_iter().filter(|n| *n >= first_topic) {
        let Some(meta) = image.topic(&name) else {
            topics.push(unknown(name));
            continue;
        };
        if left == 0 {
            return (topics, Some(cursor(name, 0)));
        }
        let from = if name == first_topic {
            first_partition.max(0) as usize
        } else {
            0
        };
        let to = meta.partitions.len().min(from + left);
        topics.push(described(meta, from..to));
        left -= to.saturating_sub(from);
        if to < meta.partitions.len() {
            return (topics, Some(cursor(name, to as i32)));
        }
    }
    (topics, None)
}

fn cursor(topic_name: String, partition_index: i32) -> Cursor {
    Cursor {
        topic_name,
        partition_index,
    }
}

fn unknown(name: String) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic {
        error_code: error_code::UNKNOWN_TOPIC_OR_PARTITION,
        name: Some(name),
        ..Default::default()
    }
}

fn described(
    topic: &TopicMeta,
    range: std::ops::Range<usize>,
) -> DescribeTopicPartitionsResponseTopic {
    let partitions = topic.partitions.get(range.clone()).unwrap_or_default();
    DescribeTopicPartitionsResponseTopic {
        error_code: error_code::NONE,
        name: Some(topic.name.clone()),
        topic_id: topic.uuid(),
        is_internal: false,
        partitions: partitions
            .iter()
            .zip(range)
            .map(|(p, index)| DescribeTopicPartitionsResponsePartition {
                error_code: error_code::NONE,
                partition_index: index as i32,
                leader_id: p.leader,
                leader_epoch: p.leader_epoch,
                replica_nodes: p.replicas.clone(),
                isr_nodes: p.in_sync().to_vec(),
                eligible_leader_replicas: Some(Vec::new()),
                last_known_elr: Some(Vec::new()),
                offline_replicas: Vec::new(),
            })
            .collect(),
        topic_authorized_operations: authorized_operations::bits(
            true,
            authorized_operations::TOPIC,
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::metadata::image::PartitionMeta;

    fn image(topics: &[(&str, usize)]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for (name, count) in topics {
            let partition = PartitionMeta {
                shard: 0,
                leader: 0,
                leader_epoch: 0,
                replicas: vec![0],
                isr: vec![0],
            };
            let meta = TopicMeta {
                name: name.to_string(),
                id: [1; 16],
                partitions: vec![partition; *count],
                configs: Default::default(),
            };
            image.topics.insert(name.to_string(), Arc::new(meta));
        }
        image
    }

    fn listed(topics: &[DescribeTopicPartitionsResponseTopic]) -> Vec<(String, Vec<i32>)> {
        topics
            .iter()
            .map(|t| {
                let parts = t.partitions.iter().map(|p| p.partition_index).collect();
                (t.name.clone().unwrap_or_default(), parts)
            })
            .collect()
    }

    #[test]
    fn pages_follow_the_cursor_until_every_partition_is_listed() {
        let image = image(&[("b", 3), ("a", 2), ("c", 1)]);
        let (topics, next) = page(&image, Vec::new(), 4, None);
        assert_eq!(
            listed(&topics),
            [("a".into(), vec![0, 1]), ("b".into(), vec![0, 1])]
        );
        let next = next.expect("a cursor");
        assert_eq!((next.topic_name.as_str(), next.partition_index), ("b", 2));
        let (topics, next) = page(&image, Vec::new(), 4, Some(("b".into(), 2)));
        assert_eq!(
            listed(&topics),
            [("b".into(), vec![2]), ("c".into(), vec![0])]
        );
        assert!(next.is_none());
    }

    #[test]
    fn a_page_that_ends_at_a_topic_boundary_points_at_the_next_topic() {
        let image = image(&[("a", 2), ("b", 1)]);
        let (topics, next) = page(&image, Vec::new(), 2, None);
        assert_eq!(listed(&topics), [("a".into(), vec![0, 1])]);
        let next = next.expect("a cursor");
        assert_eq!((next.topic_name.as_str(), next.partition_index), ("b", 0));
    }

    #[test]
    fn unknown_topics_are_answered_with_their_error() {
        let image = image(&[("a", 1)]);
        let (topics, next) = page(&image, vec!["zz".into(), "a".into()], 10, None);
        assert_eq!(topics.len(), 2);
        assert_eq!(topics[0].error_code, error_code::NONE);
        assert_eq!(topics[1].error_code, error_code::UNKNOWN_TOPIC_OR_PARTITION);
        assert!(next.is_none());
    }
}
