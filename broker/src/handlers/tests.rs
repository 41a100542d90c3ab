//! Handlers tested in-process, without the binary: a one-shard broker (its partitions on a
//! temporary data dir) on a glommio executor, requests encoded and decoded through the codec as a
//! client would send them, whole responses asserted.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use glommio::{LocalExecutorBuilder, Placement};
use riffle_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use riffle_protocol::messages::create_topics_request::{CreatableTopic, CreateTopicsRequest};
use riffle_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use riffle_protocol::messages::delete_topics_request::DeleteTopicsRequest;
use riffle_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use riffle_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use riffle_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use riffle_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use riffle_protocol::messages::*;
use riffle_protocol::record_batch::{Compression, RecordBatchBuilder};
use riffle_protocol::{
    decode_request, decode_response, encode_request, error_code, Message, Records, RequestHeader,
};
use riffle_storage::ReceiveBuffer;

use super::handle;
use crate::config::BrokerConfig;
use crate::metadata::image::MetadataImage;
use crate::metadata::Controller;
use crate::shard::{mesh, Shard, Shared};

/// Runs `test` against a fresh one-shard broker whose data dir is `data_dir`.
fn with_broker_in<F, Fut>(data_dir: PathBuf, test: F)
where
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    with_shard(data_dir, true, test)
}

/// `with_broker_in`, with the shard's group coordinator opened or (still starting) not.
fn with_shard<F, Fut>(data_dir: PathBuf, open_groups: bool, test: F)
where
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(1 << 20)
        .spawn(move || async move {
            let config = BrokerConfig {
                data_dir: data_dir.clone(),
                ..BrokerConfig::default()
            };
            let image = crate::metadata::store::load(&data_dir).expect("metadata loads");
            let shared = Arc::new(Shared {
                config,
                image: ArcSwap::from_pointee(image),
                shards: 1,
                shutting_down: Default::default(),
                cluster_view: Default::default(),
            });
            let shutdown = futures::future::pending::<()>().boxed().shared();
            let links = mesh(1).pop().expect("one shard's links");
            let controller = Rc::new(Controller::new(data_dir));
            let shard = Shard::start(0, shared, Some(controller), shutdown, links).await;
            shard.clone().open_owned_partitions().await;
            let coordinator = match open_groups {
                true => Some(shard.open_group_coordinator().await.expect("groups open")),
                false => None,
            };
            test(shard.clone()).await;
            for p in shard.open_partitions() {
                p.close().await;
            }
            if let Some(c) = coordinator {
                c.close().await;
            }
        })
        .expect("executor starts")
        .join()
        .expect("test executor");
}

fn with_broker<F, Fut>(test: F)
where
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    with_broker_in(dir.path().to_path_buf(), test);
}

/// Sends `body` at `version` through the codec and the dispatcher; the decoded response.
async fn call<Req: Message, Resp: Message>(shard: &Rc<Shard>, version: i16, body: Req) -> Resp {
    let header = RequestHeader {
        request_api_key: Req::API_KEY as i16,
        request_api_version: version,
        correlation_id: 7,
        client_id: Some("handler-test".to_string()),
    };
    let frame = join(encode_request(&header, &body).expect("request encodes"));
    let request = decode_request(frame.slice(4..)).expect("request decodes");
    let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
    let chunks = handle(
        shard.clone(),
        request,
        peer,
        ReceiveBuffer::new(frame.len()),
    )
    .await
    .expect("handler answers")
    .expect("a response (acks != 0)")
    .chunks;
    let (correlation_id, response) =
        decode_response::<Resp>(join(chunks).slice(4..), version).expect("response decodes");
    assert_eq!(correlation_id, 7);
    response
}

fn join(chunks: Vec<Bytes>) -> Bytes {
    let mut out = BytesMut::new();
    for c in chunks {
        out.extend_from_slice(&c);
    }
    out.freeze()
}

fn batch(values: &[&str], producer: Option<(i64, i16, i32)>) -> Bytes {
    let mut b = RecordBatchBuilder::new(Compression::None, 1_700_000_000_000);
    if let Some((id, epoch, seq)) = producer {
        b = b.producer(id, epoch, seq);
    }
    for v in values {
        b.append(1_700_000_000_000, None, Some(v.as_bytes()), &[]);
    }
    b.finish()
}

async fn create_topic(shard: &Rc<Shard>, name: &str, partitions: i32) -> CreateTopicsResponse {
    let request = CreateTopicsRequest {
        topics: vec![CreatableTopic {
            name: name.to_string(),
            num_partitions: partitions,
            replication_factor: 1,
            ..Default::default()
        }],
        timeout_ms: 1000,
        ..Default::default()
    };
    call(shard, 5, request).await
}

async fn produce(shard: &Rc<Shard>, topic: &str, records: Bytes, acks: i16) -> ProduceResponse {
    let request = ProduceRequest {
        acks,
        timeout_ms: 1000,
        topic_data: vec![TopicProduceData {
            topic_id: Default::default(),
            name: topic.to_string(),
            partition_data: vec![PartitionProduceData {
                index: 0,
                records: Some(Records::from_bytes(records)),
            }],
        }],
        ..Default::default()
    };
    call(shard, 9, request).await
}

fn produced(
    topic: &str,
    error_code: i16,
    base_offset: i64,
    message: Option<&str>,
) -> ProduceResponse {
    let ok = error_code == error_code::NONE;
    ProduceResponse {
        responses: vec![TopicProduceResponse {
            name: topic.to_string(),
            topic_id: Default::default(),
            partition_responses: vec![PartitionProduceResponse {
                index: 0,
                error_code,
                base_offset,
                log_append_time_ms: -1,
                log_start_offset: if ok { 0 } else { -1 },
                error_message: message.map(str::to_string),
                ..Default::default()
            }],
        }],
        ..Default::default()
    }
}

async fn fetch(shard: &Rc<Shard>, topic: &str, offset: i64) -> FetchResponse {
    let request = FetchRequest {
        replica_id: -1,
        max_wait_ms: 0,
        min_bytes: 0,
        max_bytes: 1 << 20,
        topics: vec![FetchTopic {
            topic: topic.to_string(),
            partitions: vec![FetchPartition {
                partition: 0,
                fetch_offset: offset,
                partition_max_bytes: 1 << 20,
                current_leader_epoch: -1,
                last_fetched_epoch: -1,
                log_start_offset: -1,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    call(shard, 11, request).await
}

async fn list_offset(shard: &Rc<Shard>, topic: &str, timestamp: i64) -> ListOffsetsResponse {
    let request = ListOffsetsRequest {
        replica_id: -1,
        topics: vec![ListOffsetsTopic {
            name: topic.to_string(),
            partitions: vec![ListOffsetsPartition {
                partition_index: 0,
                current_leader_epoch: -1,
                timestamp,
                ..Default::default()
            }],
        }],
        ..Default::default()
    };
    call(shard, 7, request).await
}

#[test]
fn produce_then_fetch_returns_the_stored_batch_below_the_high_watermark() {
    with_broker(|shard| async move {
        let created = create_topic(&shard, "orders", 1).await;
        assert_eq!(created.topics[0].error_code, error_code::NONE);
        let first = batch(&["a", "b", "c"], None);
        assert_eq!(
            produce(&shard, "orders", first.clone(), -1).await,
            produced("orders", error_code::NONE, 0, None)
        );
        assert_eq!(
            produce(&shard, "orders", batch(&["d"], None), -1).await,
            produced("orders", error_code::NONE, 3, None)
        );
        let response = fetch(&shard, "orders", 0).await;
        let p = &response.responses[0].partitions[0];
        assert_eq!(
            (p.error_code, p.high_watermark, p.log_start_offset),
            (0, 4, 0)
        );
        let records = p.records.as_ref().expect("records").to_bytes();
        // The first batch comes back as sent, with only its base offset (0) assigned.
        assert_eq!(records.slice(..first.len()), first);
        assert_eq!(
            list_offset(&shard, "orders", -1).await.topics[0].partitions[0].offset,
            4
        );
        assert_eq!(
            list_offset(&shard, "orders", -2).await.topics[0].partitions[0].offset,
            0
        );
    });
}

#[test]
fn a_fetch_past_the_log_end_is_out_of_range_without_offsets() {
    with_broker(|shard| async move {
        create_topic(&shard, "t", 1).await;
        produce(&shard, "t", batch(&["x"], None), -1).await;
        let response = fetch(&shard, "t", 5).await;
        let p = &response.responses[0].partitions[0];
        assert_eq!(
            (p.error_code, p.high_watermark, p.log_start_offset),
            (error_code::OFFSET_OUT_OF_RANGE, -1, -1)
        );
        let unknown = fetch(&shard, "nope", 0).await;
        assert_eq!(
            unknown.responses[0].partitions[0].error_code,
            error_code::UNKNOWN_TOPIC_OR_PARTITION
        );
    });
}

#[test]
fn idempotent_retries_are_duplicates_and_gaps_are_refused_with_a_message() {
    with_broker(|shard| async move {
        create_topic(&shard, "idem", 1).await;
        let first = batch(&["a", "b"], Some((42, 0, 0)));
        let ok = produced("idem", error_code::NONE, 0, None);
        assert_eq!(produce(&shard, "idem", first.clone(), -1).await, ok);
        assert_eq!(
            produce(&shard, "idem", first, -1).await,
            ok,
            "a retry is a duplicate"
        );
        let gap = produce(&shard, "idem", batch(&["c"], Some((42, 0, 5))), -1).await;
        assert_eq!(
            gap,
            produced(
                "idem",
                error_code::OUT_OF_ORDER_SEQUENCE_NUMBER,
                -1,
                Some("partition idem-0: producer 42: base sequence 5 is out of order, expected 2")
            )
        );
        assert_eq!(
            list_offset(&shard, "idem", -1).await.topics[0].partitions[0].offset,
            2
        );
    });
}

#[test]
fn a_corrupt_batch_is_refused_and_nothing_is_appended() {
    with_broker(|shard| async move {
        create_topic(&shard, "c", 1).await;
        let mut bad = BytesMut::from(&batch(&["a"], None)[..]);
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let response = produce(&shard, "c", bad.freeze(), 1).await;
        let p = &response.responses[0].partition_responses[0];
        assert_eq!(
            (p.error_code, p.base_offset),
            (error_code::CORRUPT_MESSAGE, -1)
        );
        assert!(p
            .error_message
            .as_deref()
            .unwrap()
            .starts_with("partition c-0: record batch at byte 0"));
        assert_eq!(
            list_offset(&shard, "c", -1).await.topics[0].partitions[0].offset,
            0
        );
    });
}

#[test]
fn delete_records_moves_the_log_start_but_never_past_the_high_watermark() {
    with_broker(|shard| async move {
        create_topic(&shard, "d", 1).await;
        produce(&shard, "d", batch(&["a", "b", "c"], None), -1).await;
        let delete = |offset| DeleteRecordsRequest {
            topics: vec![DeleteRecordsTopic {
                name: "d".to_string(),
                partitions: vec![DeleteRecordsPartition {
                    partition_index: 0,
                    offset,
                }],
            }],
            timeout_ms: 1000,
        };
        let beyond: DeleteRecordsResponse = call(&shard, 2, delete(4)).await;
        let p = &beyond.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, p.low_watermark),
            (error_code::OFFSET_OUT_OF_RANGE, -1)
        );
        let all: DeleteRecordsResponse = call(&shard, 2, delete(-1)).await;
        let p = &all.topics[0].partitions[0];
        assert_eq!((p.error_code, p.low_watermark), (error_code::NONE, 3));
        assert_eq!(
            list_offset(&shard, "d", -2).await.topics[0].partitions[0].offset,
            3
        );
    });
}

#[test]
fn a_deleted_topic_created_again_starts_empty() {
    with_broker(|shard| async move {
        create_topic(&shard, "again", 1).await;
        produce(&shard, "again", batch(&["old"], None), -1).await;
        let dir = shard.config().data_dir.join("again-0");
        assert!(dir.exists());
        let deleted: DeleteTopicsResponse = call(
            &shard,
            4,
            DeleteTopicsRequest {
                topic_names: vec!["again".to_string()],
                timeout_ms: 1000,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(deleted.responses[0].error_code, error_code::NONE);
        assert!(
            !dir.exists(),
            "the partition's files are gone before the answer"
        );
        create_topic(&shard, "again", 1).await;
        let response = fetch(&shard, "again", 0).await;
        let p = &response.responses[0].partitions[0];
        assert_eq!((p.error_code, p.high_watermark), (error_code::NONE, 0));
        assert!(p.records.as_ref().is_none_or(Records::is_empty));
    });
}

#[test]
fn start_up_removes_the_files_of_a_topic_whose_deletion_a_crash_interrupted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().to_path_buf();
    with_broker_in(data.clone(), |shard| async move {
        create_topic(&shard, "crashed", 1).await;
        produce(&shard, "crashed", batch(&["old"], None), -1).await;
    });
    // The crash: the metadata no longer has the topic, its files are still there.
    let mut image: MetadataImage = crate::metadata::store::load(&data).unwrap();
    image.topics.remove("crashed");
    crate::metadata::store::save(&data, &image).unwrap();
    assert!(data.join("crashed-0").exists());
    let mut image = crate::metadata::store::load(&data).unwrap();
    image.fit_to_shards(1);
    crate::partition::sweep_orphaned_partition_dirs(&data, &image).unwrap();
    assert!(!data.join("crashed-0").exists());
    with_broker_in(data, |shard| async move {
        create_topic(&shard, "crashed", 1).await;
        let response = fetch(&shard, "crashed", 0).await;
        assert_eq!(response.responses[0].partitions[0].high_watermark, 0);
    });
}

#[test]
fn init_producer_id_with_a_named_id_hands_out_a_new_id_and_fences_no_one() {
    with_broker(|shard| async move {
        let init = |producer_id, producer_epoch| InitProducerIdRequest {
            transactional_id: None,
            transaction_timeout_ms: 60_000,
            producer_id,
            producer_epoch,
        };
        let first: InitProducerIdResponse = call(&shard, 4, init(-1, -1)).await;
        assert_eq!(
            (first.error_code, first.producer_epoch),
            (error_code::NONE, 0)
        );
        // Another client names the first one's id: it gets an id of its own (Kafka's rule for
        // producers without a transactional id), and the first producer keeps its epoch.
        let other: InitProducerIdResponse =
            call(&shard, 4, init(first.producer_id, first.producer_epoch)).await;
        assert_eq!(
            (other.error_code, other.producer_epoch),
            (error_code::NONE, 0)
        );
        assert_ne!(other.producer_id, first.producer_id);
        create_topic(&shard, "fenced", 1).await;
        let batch = batch(&["a"], Some((first.producer_id, 0, 0)));
        assert_eq!(
            produce(&shard, "fenced", batch, -1).await,
            produced("fenced", error_code::NONE, 0, None)
        );
    });
}

#[test]
fn group_requests_to_a_shard_still_starting_get_a_retriable_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    with_shard(dir.path().to_path_buf(), false, |shard| async move {
        let heartbeat: HeartbeatResponse = call(
            &shard,
            4,
            HeartbeatRequest {
                group_id: "g".to_string(),
                generation_id: 1,
                member_id: "m".to_string(),
                group_instance_id: None,
            },
        )
        .await;
        assert_eq!(
            heartbeat.error_code,
            error_code::COORDINATOR_LOAD_IN_PROGRESS
        );
        let listed: ListGroupsResponse = call(&shard, 4, ListGroupsRequest::default()).await;
        assert_eq!(listed.error_code, error_code::COORDINATOR_LOAD_IN_PROGRESS);
    });
}

#[test]
fn a_partition_named_twice_in_a_fetch_is_read_once() {
    with_broker(|shard| async move {
        create_topic(&shard, "twice", 1).await;
        let sent = batch(&["a", "b"], None);
        produce(&shard, "twice", sent.clone(), -1).await;
        let entry = FetchPartition {
            partition: 0,
            fetch_offset: 0,
            partition_max_bytes: 1 << 20,
            current_leader_epoch: -1,
            last_fetched_epoch: -1,
            log_start_offset: -1,
            ..Default::default()
        };
        let request = FetchRequest {
            replica_id: -1,
            max_bytes: -1, // no limit asked: the broker's fetch_max_bytes applies
            topics: vec![FetchTopic {
                topic: "twice".to_string(),
                partitions: vec![entry.clone(), entry],
                ..Default::default()
            }],
            ..Default::default()
        };
        let response: FetchResponse = call(&shard, 11, request).await;
        let parts = &response.responses[0].partitions;
        let data: Vec<usize> = parts
            .iter()
            .map(|p| p.records.as_ref().map_or(0, Records::len))
            .collect();
        assert_eq!(data, [sent.len(), 0]);
        assert_eq!((parts[1].error_code, parts[1].high_watermark), (0, 2));
    });
}

#[test]
fn partitions_beyond_the_per_shard_cap_are_refused() {
    with_broker(|shard| async move {
        let cap = shard.config().topic_partitions_per_shard as i32;
        let too_many = create_topic(&shard, "huge", cap + 1).await;
        assert_eq!(
            too_many.topics[0].error_code,
            error_code::INVALID_PARTITIONS
        );
        let message = too_many.topics[0].error_message.clone().unwrap();
        assert!(message.contains("topic_partitions_per_shard"), "{message}");
        let fits = create_topic(&shard, "fits", cap - 1).await;
        assert_eq!(fits.topics[0].error_code, error_code::NONE);
        let grow = |count| CreatePartitionsRequest {
            topics: vec![CreatePartitionsTopic {
                name: "fits".to_string(),
                count,
                assignments: None,
            }],
            timeout_ms: 1000,
            validate_only: false,
        };
        let refused: CreatePartitionsResponse = call(&shard, 1, grow(cap + 1)).await;
        assert_eq!(
            refused.results[0].error_code,
            error_code::INVALID_PARTITIONS
        );
        let grown: CreatePartitionsResponse = call(&shard, 1, grow(cap)).await;
        assert_eq!(grown.results[0].error_code, error_code::NONE);
    });
}

#[test]
fn max_timestamp_answers_the_record_that_holds_it_not_its_batch_end() {
    with_broker(|shard| async move {
        create_topic(&shard, "ts", 1).await;
        let base = 1_700_000_000_000;
        produce(&shard, "ts", batch(&["first"], None), -1).await;
        let mut b = RecordBatchBuilder::new(Compression::None, base);
        for (delta, value) in [(100, "a"), (400, "b"), (250, "c")] {
            b.append(base + delta, None, Some(value.as_bytes()), &[]);
        }
        produce(&shard, "ts", b.finish(), -1).await;
        let max = list_offset(&shard, "ts", -3).await;
        let p = &max.topics[0].partitions[0];
        assert_eq!((p.error_code, p.offset, p.timestamp), (0, 2, base + 400));
    });
}
