//! Request dispatch: one file per Kafka API, one line per API here. Handlers run on the shard of
//! the connection; they translate a request into typed calls to partitions (`partition::request`),
//! group coordinators (`groups::request`) and the controller (`metadata::calls`), and the answers
//! into a response. No handler holds a partition rule.

mod api_versions;
mod client_quotas;
mod configs;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_groups;
mod describe_log_dirs;
mod describe_producers;
mod describe_quorum;
mod describe_topic_partitions;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_config_resources;
mod list_groups;
mod list_offsets;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod sasl;
mod sync_group;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use riffle_protocol::{
    encode_response, error_code, ApiKey, Message, Request, RequestBody, RequestHeader,
};
use riffle_storage::ReceiveBuffer;

use crate::connection::HeldBudget;
use crate::errors;
use crate::metadata::image::{BrokerMeta, TopicMeta};
use crate::metadata::{calls, ControllerError, NewTopic};
use crate::shard::Shard;

/// What a handler produces: the encoded response, nothing (acks=0), or a reason to close.
pub type Outcome = Result<Option<Response>, String>;

/// An encoded response, and the shard budget its buffers hold until it is written.
pub struct Response {
    pub chunks: Vec<Bytes>,
    pub held: Option<HeldBudget>,
}

fn respond<M: Message>(header: &RequestHeader, body: &M) -> Outcome {
    respond_holding(header, body, None)
}

fn respond_holding<M: Message>(
    header: &RequestHeader,
    body: &M,
    held: Option<HeldBudget>,
) -> Outcome {
    encode_response(header.correlation_id, header.request_api_version, body)
        .map(|chunks| Some(Response { chunks, held }))
        .map_err(|e| {
            format!(
                "cannot encode {} v{} response: {e}",
                M::API_KEY.name(),
                header.request_api_version
            )
        })
}

/// `received_in`: the receive buffer the request's frame is a slice of (what a slice of the
/// request keeps alive).
pub async fn handle(
    shard: Rc<Shard>,
    request: Request,
    peer: SocketAddr,
    received_in: ReceiveBuffer,
) -> Outcome {
    let h = &request.header;
    let s = &shard;
    match request.body {
        RequestBody::ApiVersions(_) => respond(h, &api_versions::handle(h)),
        RequestBody::Metadata(r) => respond(h, &metadata::handle(s, h, r).await),
        RequestBody::Produce(r) => produce::handle(s, h, r, &received_in).await,
        RequestBody::Fetch(r) => {
            let (response, held) = fetch::handle(s, h, r).await;
            respond_holding(h, &response, held)
        }
        RequestBody::ListOffsets(r) => respond(h, &list_offsets::handle(s, r).await),
        RequestBody::OffsetForLeaderEpoch(r) => {
            respond(h, &offset_for_leader_epoch::handle(s, r).await)
        }
        RequestBody::CreateTopics(r) => respond(h, &create_topics::handle(s, h, r).await),
        RequestBody::DeleteTopics(r) => respond(h, &delete_topics::handle(s, h, r).await),
        RequestBody::CreatePartitions(r) => respond(h, &create_partitions::handle(s, r).await),
        RequestBody::DescribeConfigs(r) => respond(h, &configs::describe(s, h, r)),
        RequestBody::AlterConfigs(r) => respond(h, &configs::alter(s, r).await),
        RequestBody::IncrementalAlterConfigs(r) => {
            respond(h, &configs::incremental_alter(s, r).await)
        }
        RequestBody::DeleteRecords(r) => respond(h, &delete_records::handle(s, r).await),
        RequestBody::DescribeCluster(r) => respond(h, &describe_cluster::handle(s, r)),
        RequestBody::DescribeTopicPartitions(r) => {
            respond(h, &describe_topic_partitions::handle(s, r))
        }
        RequestBody::DescribeLogDirs(r) => respond(h, &describe_log_dirs::handle(s, r).await),
        RequestBody::DescribeProducers(r) => respond(h, &describe_producers::handle(s, r).await),
        RequestBody::DescribeQuorum(r) => respond(h, &describe_quorum::handle(s, r)),
        RequestBody::InitProducerId(r) => respond(h, &init_producer_id::handle(s, r).await),
        RequestBody::FindCoordinator(r) => respond(h, &find_coordinator::handle(s, r)),
        RequestBody::JoinGroup(r) => respond(h, &join_group::handle(s, h, r, peer).await),
        RequestBody::SyncGroup(r) => respond(h, &sync_group::handle(s, r).await),
        RequestBody::Heartbeat(r) => respond(h, &heartbeat::handle(s, r).await),
        RequestBody::LeaveGroup(r) => respond(h, &leave_group::handle(s, h, r).await),
        RequestBody::OffsetCommit(r) => respond(h, &offset_commit::handle(s, h, r).await),
        RequestBody::OffsetFetch(r) => respond(h, &offset_fetch::handle(s, h, r).await),
        RequestBody::OffsetDelete(r) => respond(h, &offset_delete::handle(s, r).await),
        RequestBody::ListGroups(r) => respond(h, &list_groups::handle(s, r).await),
        RequestBody::DescribeClientQuotas(r) => respond(h, &client_quotas::describe(s, r)),
        RequestBody::AlterClientQuotas(r) => respond(h, &client_quotas::alter(s, r).await),
        RequestBody::ListConfigResources(r) => {
            respond(h, &list_config_resources::handle(s, h, r).await)
        }
        RequestBody::DescribeGroups(r) => respond(h, &describe_groups::handle(s, h, r).await),
        RequestBody::DeleteGroups(r) => respond(h, &delete_groups::handle(s, r).await),
        RequestBody::ConsumerGroupHeartbeat(r) => {
            respond(h, &consumer_group_heartbeat::handle(s, h, r, peer).await)
        }
        RequestBody::ConsumerGroupDescribe(r) => {
            respond(h, &consumer_group_describe::handle(s, r).await)
        }
        RequestBody::SaslHandshake(_) => respond(h, &sasl::handshake()),
        RequestBody::SaslAuthenticate(_) => respond(h, &sasl::authenticate()),
    }
}

/// A known API at a version we do not serve. ApiVersions gets its v0 answer with the table
/// (KIP-511); Produce v0–2 (advertised, because librdkafka turns compression off otherwise) get
/// UNSUPPORTED_VERSION for every partition; anything else closes the connection, as the client
/// ignored our ApiVersions.
pub async fn unsupported_version(header: RequestHeader, frame: Bytes) -> Outcome {
    if header.request_api_key == ApiKey::ApiVersions as i16 {
        let mut h = header;
        h.request_api_version = 0;
        let mut body = api_versions::handle(&h);
        body.error_code = error_code::UNSUPPORTED_VERSION;
        return respond(&h, &body);
    }
    if header.request_api_key == ApiKey::Produce as i16
        && (0..=2).contains(&header.request_api_version)
    {
        let request = produce::decode_old_request(&header, frame).unwrap_or_default();
        return respond(
            &header,
            &produce::error_response(&request, error_code::UNSUPPORTED_VERSION),
        );
    }
    Err(format!(
        "{} v{} is not supported (correlation id {})",
        ApiKey::from_i16(header.request_api_key).map_or("?", |k| k.name()),
        header.request_api_version,
        header.correlation_id
    ))
}

/// The topic `name`, created with the default settings if it is missing and `auto_create` holds.
pub async fn topic_or_create(
    shard: &Rc<Shard>,
    name: &str,
    auto_create: bool,
) -> Result<Arc<TopicMeta>, i16> {
    if let Some(t) = shard.image().topic(name) {
        return Ok(t.clone());
    }
    if !(auto_create && shard.config().auto_create_topics_enable) {
        return Err(error_code::UNKNOWN_TOPIC_OR_PARTITION);
    }
    let topic = NewTopic {
        name: name.to_string(),
        num_partitions: -1,
        replication_factor: -1,
        configs: Default::default(),
    };
    match calls::create_topic(shard, topic, false).await {
        Ok(_) | Err(ControllerError::TopicExists { .. }) => {
            tracing::info!(topic = name, "auto-created topic");
            shard
                .image()
                .topic(name)
                .cloned()
                .ok_or(error_code::UNKNOWN_TOPIC_OR_PARTITION)
        }
        Err(e) => Err(errors::controller_error_code(&e)),
    }
}

/// For requests that name topics and their partitions (ListOffsets, DeleteRecords,
/// OffsetForLeaderEpoch): resolves each topic once, then answers each partition entry in order
/// with `answer(topic, entry)`, the topic being None when it does not exist.
pub async fn answer_each_partition<E, R, Fut>(
    shard: &Rc<Shard>,
    topics: Vec<(String, Vec<E>)>,
    answer: impl Fn(Option<Arc<TopicMeta>>, E) -> Fut,
) -> Vec<(String, Vec<R>)>
where
    Fut: Future<Output = R>,
{
    let image = shard.image();
    let mut answered = Vec::with_capacity(topics.len());
    for (name, entries) in topics {
        let topic = image.topic(&name).cloned();
        let mut partitions = Vec::with_capacity(entries.len());
        for entry in entries {
            partitions.push(answer(topic.clone(), entry).await);
        }
        answered.push((name, partitions));
    }
    answered
}

/// KIP-951: the endpoints of the live brokers among `leaders` (ids named as current leaders in
/// a Produce or Fetch response), each once, so a client reaches a moved leader without first
/// refreshing its metadata.
pub fn leader_endpoints<E: From<BrokerMeta>>(shard: &Shard, mut leaders: Vec<i32>) -> Vec<E> {
    leaders.sort_unstable();
    leaders.dedup();
    let Some(members) = shard.image().cluster.clone() else {
        return Vec::new();
    };
    leaders
        .into_iter()
        .filter_map(|id| members.live_brokers().find(|b| b.node_id == id).cloned())
        .map(E::from)
        .collect()
}

/// The KIP-951 endpoint types of Produce and Fetch responses (generated apart, the same fields).
macro_rules! node_endpoint_from_broker {
    ($($endpoint:path),*) => {$(
        impl From<BrokerMeta> for $endpoint {
            fn from(b: BrokerMeta) -> Self {
                Self {
                    node_id: b.node_id,
                    host: b.host,
                    port: b.port,
                    rack: b.rack,
                }
            }
        }
    )*};
}

node_endpoint_from_broker!(
    riffle_protocol::messages::fetch_response::NodeEndpoint,
    riffle_protocol::messages::produce_response::NodeEndpoint
);
