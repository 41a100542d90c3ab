//! The metadata state machine's rules, record by record.

use std::collections::BTreeMap;

use crate::image::*;
use crate::placement::{assign_partitions, plan_create_partitions, plan_create_topic};
use crate::records::*;

fn registration(broker_id: BrokerId, rack: &str, shard_count: u32) -> MetadataRecord {
    MetadataRecord::RegisterBroker(BrokerRegistration {
        broker_id,
        incarnation_id: [broker_id as u8; 16],
        listeners: vec![Listener {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9000 + broker_id as u16,
        }],
        rack: Some(rack.into()),
        shard_count,
    })
}

/// An image with `count` unfenced brokers over `racks` racks, two shards each.
fn cluster(count: i32, racks: i32) -> MetadataImage {
    let mut image = MetadataImage::default();
    for id in 1..=count {
        let index = id as u64;
        image
            .apply(index, &registration(id, &format!("r{}", id % racks), 2))
            .unwrap();
        let unfence = MetadataRecord::UnfenceBroker {
            broker_id: id,
            broker_epoch: index,
        };
        image.apply(100 + index, &unfence).unwrap();
    }
    image
}

fn create(image: &mut MetadataImage, name: &str, partitions: usize, rf: i32) -> TopicId {
    let topic_id = TopicId([image.topics.len() as u8 + 1; 16]);
    let record = plan_create_topic(image, name, topic_id, partitions, rf, BTreeMap::new()).unwrap();
    image.apply(1000, &record).unwrap();
    topic_id
}

#[test]
fn created_topic_starts_with_full_isr_and_first_replica_leading() {
    let mut image = cluster(3, 3);
    let topic_id = create(&mut image, "orders", 3, 3);
    let topic = image.topic_by_name("orders").unwrap();
    assert_eq!(topic.topic_id, topic_id);
    for partition in &topic.partitions {
        assert_eq!(partition.isr, partition.assignment.replicas);
        assert_eq!(partition.leader, partition.assignment.replicas[0]);
        assert_eq!((partition.leader_epoch, partition.partition_epoch), (0, 0));
    }
}

#[test]
fn duplicate_topic_is_refused_and_changes_nothing() {
    let mut image = cluster(3, 3);
    create(&mut image, "orders", 1, 1);
    let before = image.clone();
    let again = MetadataRecord::CreateTopic {
        name: "orders".into(),
        topic_id: TopicId([9; 16]),
        partitions: assign_partitions(&image, 1, 1).unwrap(),
        configs: BTreeMap::new(),
    };
    assert_eq!(
        image.apply(2000, &again),
        Err(MetadataError::TopicAlreadyExists {
            topic: "orders".into()
        })
    );
    assert_eq!(image, before);
}

#[test]
fn fencing_the_leader_moves_leadership_and_bumps_epochs() {
    let mut image = cluster(3, 3);
    create(&mut image, "orders", 1, 3);
    let partition = image.topic_by_name("orders").unwrap().partitions[0].clone();
    let old_leader = partition.leader;
    let epoch = image.brokers[&old_leader].broker_epoch;
    let fence = MetadataRecord::FenceBroker {
        broker_id: old_leader,
        broker_epoch: epoch,
    };
    image.apply(2000, &fence).unwrap();
    let after = &image.topic_by_name("orders").unwrap().partitions[0];
    assert_ne!(after.leader, old_leader);
    assert!(!after.isr.contains(&old_leader));
    assert_eq!(after.leader, after.isr[0]);
    assert_eq!((after.leader_epoch, after.partition_epoch), (1, 1));
    assert!(image.brokers[&old_leader].fenced);
}

#[test]
fn last_isr_member_fenced_leaves_no_leader_until_it_returns() {
    let mut image = cluster(1, 1);
    create(&mut image, "solo", 1, 1);
    let epoch = image.brokers[&1].broker_epoch;
    image
        .apply(
            2000,
            &MetadataRecord::FenceBroker {
                broker_id: 1,
                broker_epoch: epoch,
            },
        )
        .unwrap();
    let partition = &image.topic_by_name("solo").unwrap().partitions[0];
    assert_eq!(partition.leader, NO_LEADER);
    assert_eq!(partition.isr, vec![1], "the last ISR member is kept");
    image
        .apply(
            2001,
            &MetadataRecord::UnfenceBroker {
                broker_id: 1,
                broker_epoch: epoch,
            },
        )
        .unwrap();
    let partition = &image.topic_by_name("solo").unwrap().partitions[0];
    assert_eq!((partition.leader, partition.leader_epoch), (1, 2));
}

#[test]
fn fence_with_a_stale_broker_epoch_is_refused() {
    let mut image = cluster(2, 1);
    let fence = MetadataRecord::FenceBroker {
        broker_id: 1,
        broker_epoch: 77,
    };
    assert!(matches!(
        image.apply(3000, &fence),
        Err(MetadataError::StaleBrokerEpoch {
            broker_id: 1,
            given: 77,
            ..
        })
    ));
    let unknown = MetadataRecord::FenceBroker {
        broker_id: 9,
        broker_epoch: 1,
    };
    assert_eq!(
        image.apply(3001, &unknown),
        Err(MetadataError::BrokerNotAvailable { broker_id: 9 })
    );
}

#[test]
fn new_incarnation_starts_fenced_with_a_new_epoch() {
    let mut image = cluster(3, 3);
    create(&mut image, "orders", 3, 3);
    let MetadataRecord::RegisterBroker(mut again) = registration(1, "r1", 2) else {
        unreachable!()
    };
    again.incarnation_id = [0xaa; 16];
    image
        .apply(5000, &MetadataRecord::RegisterBroker(again))
        .unwrap();
    assert_eq!(image.brokers[&1].broker_epoch, 5000);
    assert!(image.brokers[&1].fenced);
    for partition in &image.topic_by_name("orders").unwrap().partitions {
        assert_ne!(partition.leader, 1);
    }
}

#[test]
fn partition_change_needs_the_current_partition_epoch() {
    let mut image = cluster(3, 3);
    let topic_id = create(&mut image, "orders", 1, 3);
    let replicas = image.topics[&topic_id].partitions[0]
        .assignment
        .replicas
        .clone();
    let shrink = |epoch| MetadataRecord::ChangePartition {
        topic_id,
        partition: 0,
        partition_epoch: epoch,
        leader: None,
        isr: Some(replicas[..2].to_vec()),
    };
    assert!(matches!(
        image.apply(2000, &shrink(5)),
        Err(MetadataError::InvalidUpdateVersion {
            current: 0,
            given: 5,
            ..
        })
    ));
    image.apply(2001, &shrink(0)).unwrap();
    let partition = &image.topics[&topic_id].partitions[0];
    assert_eq!(partition.isr, replicas[..2].to_vec());
    assert_eq!((partition.partition_epoch, partition.leader_epoch), (1, 0));
    let bad_leader = MetadataRecord::ChangePartition {
        topic_id,
        partition: 0,
        partition_epoch: 1,
        leader: Some(replicas[2]),
        isr: None,
    };
    assert!(matches!(
        image.apply(2002, &bad_leader),
        Err(MetadataError::IneligibleReplica { .. })
    ));
}

#[test]
fn topic_name_limit_is_249_characters() {
    let mut image = cluster(1, 1);
    let longest = "t".repeat(TOPIC_NAME_MAX_LEN);
    create(&mut image, &longest, 1, 1);
    let too_long = "t".repeat(TOPIC_NAME_MAX_LEN + 1);
    let result = plan_create_topic(&image, &too_long, TopicId([3; 16]), 1, 1, BTreeMap::new());
    assert!(matches!(result, Err(MetadataError::InvalidTopic { .. })));
    let result = plan_create_topic(&image, "a/b", TopicId([4; 16]), 1, 1, BTreeMap::new());
    assert!(matches!(result, Err(MetadataError::InvalidTopic { .. })));
}

#[test]
fn partition_limit_is_enforced_at_create_and_extend() {
    let mut image = cluster(1, 1);
    create(&mut image, "big", TOPIC_PARTITIONS_MAX - 1, 1);
    let one_more = plan_create_partitions(&image, "big", TOPIC_PARTITIONS_MAX).unwrap();
    image.apply(2000, &one_more).unwrap();
    assert_eq!(
        image.topic_by_name("big").unwrap().partitions.len(),
        TOPIC_PARTITIONS_MAX
    );
    let beyond = plan_create_partitions(&image, "big", TOPIC_PARTITIONS_MAX + 1);
    assert!(matches!(
        beyond,
        Err(MetadataError::InvalidPartitions { .. })
    ));
    let fewer = plan_create_partitions(&image, "big", 3);
    assert!(matches!(
        fewer,
        Err(MetadataError::InvalidPartitions { .. })
    ));
}

#[test]
fn config_count_limit_and_alter() {
    let mut image = cluster(1, 1);
    let topic_id = create(&mut image, "cfg", 1, 1);
    let configs = |n: usize| (0..n).map(|i| (format!("k{i}"), "v".to_string())).collect();
    let alter = |set| MetadataRecord::AlterTopicConfigs {
        topic_id,
        set,
        delete: vec![],
    };
    image
        .apply(2000, &alter(configs(TOPIC_CONFIGS_MAX)))
        .unwrap();
    assert!(matches!(
        image.apply(2001, &alter(configs(TOPIC_CONFIGS_MAX + 1))),
        Err(MetadataError::InvalidConfig { .. })
    ));
    assert_eq!(image.topics[&topic_id].configs.len(), TOPIC_CONFIGS_MAX);
    let delete = MetadataRecord::AlterTopicConfigs {
        topic_id,
        set: BTreeMap::new(),
        delete: vec!["k0".into()],
    };
    image.apply(2002, &delete).unwrap();
    assert!(!image.topics[&topic_id].configs.contains_key("k0"));
}

#[test]
fn delete_topic_frees_its_name() {
    let mut image = cluster(1, 1);
    let topic_id = create(&mut image, "gone", 1, 1);
    image
        .apply(2000, &MetadataRecord::DeleteTopic { topic_id })
        .unwrap();
    assert!(image.topic_by_name("gone").is_none());
    assert_eq!(
        image.apply(2001, &MetadataRecord::DeleteTopic { topic_id }),
        Err(MetadataError::UnknownTopicId { topic_id })
    );
    create(&mut image, "gone", 1, 1);
}

#[test]
fn replicas_spread_over_racks_and_balance_brokers_leaders_and_shards() {
    let mut image = cluster(6, 3);
    create(&mut image, "spread", 12, 3);
    let topic = image.topic_by_name("spread").unwrap();
    let mut replicas = BTreeMap::<BrokerId, usize>::new();
    let mut leaders = BTreeMap::<BrokerId, usize>::new();
    let mut shards = BTreeMap::<(BrokerId, u32), usize>::new();
    for partition in &topic.partitions {
        let racks: std::collections::BTreeSet<_> = partition
            .assignment
            .replicas
            .iter()
            .map(|b| image.brokers[b].registration.rack.clone())
            .collect();
        assert_eq!(
            racks.len(),
            3,
            "one replica per rack: {:?}",
            partition.assignment
        );
        *leaders.entry(partition.leader).or_default() += 1;
        for (b, s) in partition
            .assignment
            .replicas
            .iter()
            .zip(&partition.assignment.shards)
        {
            *replicas.entry(*b).or_default() += 1;
            *shards.entry((*b, *s)).or_default() += 1;
        }
    }
    assert!(replicas.values().all(|n| *n == 6), "{replicas:?}");
    assert!(leaders.values().all(|n| *n == 2), "{leaders:?}");
    assert!(shards.values().all(|n| *n == 3), "{shards:?}");
}

#[test]
fn fenced_brokers_get_no_new_replicas() {
    let mut image = cluster(3, 1);
    let epoch = image.brokers[&2].broker_epoch;
    image
        .apply(
            2000,
            &MetadataRecord::FenceBroker {
                broker_id: 2,
                broker_epoch: epoch,
            },
        )
        .unwrap();
    let assignments = assign_partitions(&image, 4, 2).unwrap();
    assert!(assignments.iter().all(|a| !a.replicas.contains(&2)));
    assert!(matches!(
        assign_partitions(&image, 1, 3),
        Err(MetadataError::InvalidReplicationFactor {
            requested: 3,
            available: 2
        })
    ));
}

#[test]
fn restart_with_fewer_shards_moves_replicas_to_existing_shards() {
    let mut image = cluster(1, 1);
    create(&mut image, "s", 4, 1);
    let MetadataRecord::RegisterBroker(mut again) = registration(1, "r0", 1) else {
        unreachable!()
    };
    again.incarnation_id = [0xbb; 16];
    image
        .apply(3000, &MetadataRecord::RegisterBroker(again))
        .unwrap();
    for partition in &image.topic_by_name("s").unwrap().partitions {
        assert_eq!(partition.assignment.shards, vec![0]);
    }
}

#[test]
fn image_round_trips_as_a_snapshot() {
    let mut image = cluster(3, 2);
    create(&mut image, "a", 3, 2);
    create(&mut image, "b", 1, 3);
    let bytes = encode(&image);
    assert_eq!(decode::<MetadataImage>(&bytes).unwrap(), image);
}

/// `count` one-partition topics on broker 1 put straight into `image` (no per-record checks:
/// this only builds an image at a limit quickly).
fn fill_topics(image: &mut MetadataImage, count: usize, configs: &BTreeMap<String, String>) {
    for i in image.topics.len()..image.topics.len() + count {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let name = format!("filler-{i}");
        let topic_id = TopicId(id);
        let partitions = vec![PartitionState {
            assignment: PartitionAssignment {
                replicas: vec![1],
                shards: vec![0],
            },
            leader: 1,
            isr: vec![1],
            leader_epoch: 0,
            partition_epoch: 0,
        }];
        image.topic_ids_by_name.insert(name.clone(), topic_id);
        image.topics.insert(
            topic_id,
            TopicState {
                name,
                topic_id,
                partitions,
                configs: configs.clone(),
            },
        );
    }
}

#[test]
fn topic_count_limit_is_refused_with_policy_violation() {
    let mut image = cluster(1, 1);
    fill_topics(&mut image, CLUSTER_TOPICS_MAX - 1, &BTreeMap::new());
    create(&mut image, "last", 1, 1);
    assert_eq!(image.topics.len(), CLUSTER_TOPICS_MAX);
    let before = image.clone();
    let one_more = MetadataRecord::CreateTopic {
        name: "one-more".into(),
        topic_id: TopicId([0xee; 16]),
        partitions: assign_partitions(&image, 1, 1).unwrap(),
        configs: BTreeMap::new(),
    };
    assert!(matches!(
        image.apply(2000, &one_more),
        Err(MetadataError::PolicyViolation { .. })
    ));
    assert_eq!(image, before);
    // A name that exists is still told so, limit or not.
    assert!(matches!(
        plan_create_topic(&image, "last", TopicId([0xef; 16]), 1, 1, BTreeMap::new()),
        Err(MetadataError::TopicAlreadyExists { .. })
    ));
}

#[test]
fn cluster_partition_limit_is_refused_with_invalid_partitions() {
    let mut image = cluster(1, 1);
    let per_topic = TOPIC_PARTITIONS_MAX;
    for i in 0..CLUSTER_PARTITIONS_MAX / per_topic - 1 {
        create(&mut image, &format!("wide-{i}"), per_topic, 1);
    }
    create(&mut image, "almost", per_topic - 1, 1);
    // The last partition the cluster may hold fits; the next is refused, at create and at extend.
    create(&mut image, "one", 1, 1);
    let total: usize = image.topics.values().map(|t| t.partitions.len()).sum();
    assert_eq!(total, CLUSTER_PARTITIONS_MAX);
    let before = image.clone();
    let assignment = assign_partitions(&image, 1, 1).unwrap();
    let create_one = MetadataRecord::CreateTopic {
        name: "one-more".into(),
        topic_id: TopicId([0xee; 16]),
        partitions: assignment.clone(),
        configs: BTreeMap::new(),
    };
    assert!(matches!(
        image.apply(3001, &create_one),
        Err(MetadataError::InvalidPartitions { .. })
    ));
    let grow = MetadataRecord::AddPartitions {
        topic_id: image.topic_by_name("one").unwrap().topic_id,
        existing_count: 1,
        partitions: assignment,
    };
    assert!(matches!(
        image.apply(3002, &grow),
        Err(MetadataError::InvalidPartitions { .. })
    ));
    assert_eq!(image, before);
}

#[test]
fn image_size_limit_keeps_every_snapshot_within_one_frame() {
    let mut image = cluster(1, 1);
    // 64 configs of 4 KiB values: about 256 KiB a topic.
    let configs: BTreeMap<String, String> = (0..TOPIC_CONFIGS_MAX)
        .map(|i| (format!("k{i}"), "v".repeat(TOPIC_CONFIG_VALUE_MAX_LEN)))
        .collect();
    let per_topic = crate::records::encode(&configs).len();
    fill_topics(&mut image, IMAGE_MAX_BYTES / per_topic - 1, &configs);
    let refused = (0..4).find_map(|i| {
        let record = MetadataRecord::CreateTopic {
            name: format!("big-{i}"),
            topic_id: TopicId([0xe0 + i as u8; 16]),
            partitions: assign_partitions(&image, 1, 1).unwrap(),
            configs: configs.clone(),
        };
        image.apply(4000 + i, &record).err()
    });
    assert!(
        matches!(refused, Some(MetadataError::PolicyViolation { .. })),
        "{refused:?}"
    );
    let snapshot_bytes = crate::records::encode(&image).len();
    assert!(snapshot_bytes <= IMAGE_MAX_BYTES, "{snapshot_bytes}");
    // At the limit a config change that does not grow the image still applies.
    let topic_id = *image.topics.keys().next().unwrap();
    let same_size = MetadataRecord::AlterTopicConfigs {
        topic_id,
        set: (0..TOPIC_CONFIGS_MAX)
            .map(|i| (format!("k{i}"), "w".repeat(TOPIC_CONFIG_VALUE_MAX_LEN)))
            .collect(),
        delete: vec![],
    };
    image.apply(5000, &same_size).unwrap();
}

#[test]
fn checked_create_partitions_applies_once_however_often_it_is_retried() {
    let mut image = cluster(3, 3);
    create(&mut image, "orders", 2, 1);
    let record = plan_create_partitions(&image, "orders", 4).unwrap();
    image.apply(6000, &record).unwrap();
    // The same request again (a retry after a timeout) changes nothing.
    let retried = image.clone();
    assert!(matches!(
        image.apply(6001, &record),
        Err(MetadataError::InvalidPartitions { .. })
    ));
    assert_eq!(image, retried);
    assert_eq!(image.topic_by_name("orders").unwrap().partitions.len(), 4);
}
