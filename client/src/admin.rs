//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs,
//! IncrementalAlterConfigs, and the cluster's brokers from DescribeCluster or Metadata.
//! Each sends one request to the bootstrap broker (Kafka forwards admin requests to its
//! controller) and turns a Kafka error code into a `ClientError` naming the topic.

use riffle_protocol::messages::create_partitions_request::{
    CreatePartitionsRequest, CreatePartitionsTopic,
};
use riffle_protocol::messages::create_partitions_response::CreatePartitionsResponse;
use riffle_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig, CreateTopicsRequest,
};
use riffle_protocol::messages::create_topics_response::CreateTopicsResponse;
use riffle_protocol::messages::delete_topics_request::{DeleteTopicState, DeleteTopicsRequest};
use riffle_protocol::messages::delete_topics_response::DeleteTopicsResponse;
use riffle_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use riffle_protocol::messages::describe_cluster_response::DescribeClusterResponse;
use riffle_protocol::messages::describe_configs_request::{
    DescribeConfigsRequest, DescribeConfigsResource,
};
use riffle_protocol::messages::describe_configs_response::DescribeConfigsResponse;
use riffle_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig, IncrementalAlterConfigsRequest,
};
use riffle_protocol::messages::incremental_alter_configs_response::IncrementalAlterConfigsResponse;
use riffle_protocol::ApiKey;

use crate::client::Client;
use crate::error::ClientError;

/// How long the broker may take to carry out an admin request (Kafka's `timeout_ms`).
const ADMIN_TIMEOUT_MS: i32 = 10_000;
/// DescribeConfigs' resource type of a topic.
const RESOURCE_TOPIC: i8 = 2;
/// IncrementalAlterConfigs' operations.
const CONFIG_SET: i8 = 0;
const CONFIG_DELETE: i8 = 1;
/// DescribeCluster's endpoint type: the brokers (2 is the controllers).
const ENDPOINT_TYPE_BROKERS: i8 = 1;
/// DescribeConfigs' source of a value the broker's default supplies.
const SOURCE_DEFAULT: i8 = 5;

/// One topic configuration entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    /// Whether the value is a default rather than set on the topic.
    pub is_default: bool,
    pub read_only: bool,
    pub sensitive: bool,
}

/// A broker of the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// The cluster as a broker sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterInfo {
    pub cluster_id: Option<String>,
    /// -1 when the broker names none.
    pub controller_id: i32,
    pub brokers: Vec<BrokerInfo>,
}

/// A topic to create.
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    pub name: String,
    /// -1: the broker's default.
    pub partitions: i32,
    /// -1: the broker's default.
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

impl Client {
    pub fn create_topic(&mut self, topic: &NewTopic) -> Result<(), ClientError> {
        let request = CreateTopicsRequest {
            topics: vec![CreatableTopic {
                name: topic.name.clone(),
                num_partitions: topic.partitions,
                replication_factor: topic.replication_factor,
                configs: topic
                    .configs
                    .iter()
                    .map(|(name, value)| CreatableTopicConfig {
                        name: name.clone(),
                        value: Some(value.clone()),
                    })
                    .collect(),
                ..Default::default()
            }],
            timeout_ms: ADMIN_TIMEOUT_MS,
            validate_only: false,
        };
        let resp: CreateTopicsResponse = self.bootstrap().call(&request)?;
        check_topic(
            &topic.name,
            resp.topics
                .iter()
                .map(|t| (t.error_code, t.error_message.as_deref())),
        )
    }

    pub fn delete_topic(&mut self, topic: &str) -> Result<(), ClientError> {
        let conn = self.bootstrap();
        // v6 names topics in `topics` (by name or id), earlier versions in `topic_names`.
        let request = if conn.version(ApiKey::DeleteTopics)? >= 6 {
            DeleteTopicsRequest {
                topics: vec![DeleteTopicState {
                    name: Some(topic.into()),
                    ..Default::default()
                }],
                timeout_ms: ADMIN_TIMEOUT_MS,
                ..Default::default()
            }
        } else {
            DeleteTopicsRequest {
                topic_names: vec![topic.into()],
                timeout_ms: ADMIN_TIMEOUT_MS,
                ..Default::default()
            }
        };
        let resp: DeleteTopicsResponse = conn.call(&request)?;
        check_topic(
            topic,
            resp.responses
                .iter()
                .map(|r| (r.error_code, r.error_message.as_deref())),
        )
    }

    /// Grows `topic` to `total_partitions` (Kafka's CreatePartitions takes the new total).
    pub fn create_partitions(
        &mut self,
        topic: &str,
        total_partitions: i32,
    ) -> Result<(), ClientError> {
        let request = CreatePartitionsRequest {
            topics: vec![CreatePartitionsTopic {
                name: topic.into(),
                count: total_partitions,
                assignments: None,
            }],
            timeout_ms: ADMIN_TIMEOUT_MS,
            validate_only: false,
        };
        let resp: CreatePartitionsResponse = self.bootstrap().call(&request)?;
        check_topic(
            topic,
            resp.results
                .iter()
                .map(|r| (r.error_code, r.error_message.as_deref())),
        )
    }

    /// Every configuration entry of `topic`, defaults included.
    pub fn describe_topic_configs(&mut self, topic: &str) -> Result<Vec<ConfigEntry>, ClientError> {
        let request = DescribeConfigsRequest {
            resources: vec![DescribeConfigsResource {
                resource_type: RESOURCE_TOPIC,
                resource_name: topic.into(),
                configuration_keys: None,
            }],
            include_synonyms: false,
            include_documentation: false,
        };
        let resp: DescribeConfigsResponse = self.bootstrap().call(&request)?;
        let mut out = Vec::new();
        for r in resp.results {
            ClientError::check(
                r.error_code,
                || format!("topic '{topic}'"),
                r.error_message.as_deref(),
            )?;
            out.extend(r.configs.into_iter().map(|c| ConfigEntry {
                // v0 has only `is_default`; later versions say where a value comes from.
                is_default: c.is_default || c.config_source == SOURCE_DEFAULT,
                name: c.name,
                value: c.value,
                read_only: c.read_only,
                sensitive: c.is_sensitive,
            }));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Sets the `set` entries and removes the `delete` ones on `topic`, leaving the others.
    pub fn alter_topic_configs(
        &mut self,
        topic: &str,
        set: &[(String, String)],
        delete: &[String],
    ) -> Result<(), ClientError> {
        let configs = set
            .iter()
            .map(|(name, value)| AlterableConfig {
                name: name.clone(),
                config_operation: CONFIG_SET,
                value: Some(value.clone()),
            })
            .chain(delete.iter().map(|name| AlterableConfig {
                name: name.clone(),
                config_operation: CONFIG_DELETE,
                value: None,
            }))
            .collect();
        let request = IncrementalAlterConfigsRequest {
            resources: vec![AlterConfigsResource {
                resource_type: RESOURCE_TOPIC,
                resource_name: topic.into(),
                configs,
            }],
            validate_only: false,
        };
        let resp: IncrementalAlterConfigsResponse = self.bootstrap().call(&request)?;
        check_topic(
            topic,
            resp.responses
                .iter()
                .map(|r| (r.error_code, r.error_message.as_deref())),
        )
    }

    /// The cluster's id, controller and brokers: DescribeCluster where the broker offers it
    /// (Kafka 2.8+), else Metadata.
    pub fn cluster_info(&mut self) -> Result<ClusterInfo, ClientError> {
        let conn = self.bootstrap();
        if conn.versions().get(ApiKey::DescribeCluster).is_some() {
            let resp: DescribeClusterResponse = conn.call(&DescribeClusterRequest {
                include_fenced_brokers: false,
                include_cluster_authorized_operations: false,
                endpoint_type: ENDPOINT_TYPE_BROKERS,
            })?;
            ClientError::check(
                resp.error_code,
                || "cluster".into(),
                resp.error_message.as_deref(),
            )?;
            let brokers = resp.brokers.into_iter().map(|b| BrokerInfo {
                node_id: b.broker_id,
                host: b.host,
                port: b.port,
                rack: b.rack,
            });
            return Ok(ClusterInfo::new(
                Some(resp.cluster_id),
                resp.controller_id,
                brokers,
            ));
        }
        let metadata = self.metadata(Some(&[]))?;
        let brokers = metadata.brokers.into_iter().map(|b| BrokerInfo {
            node_id: b.node_id,
            host: b.host,
            port: b.port,
            rack: b.rack,
        });
        Ok(ClusterInfo::new(
            metadata.cluster_id,
            metadata.controller_id,
            brokers,
        ))
    }
}

impl ClusterInfo {
    fn new(
        cluster_id: Option<String>,
        controller_id: i32,
        brokers: impl Iterator<Item = BrokerInfo>,
    ) -> ClusterInfo {
        let mut brokers: Vec<BrokerInfo> = brokers.collect();
        brokers.sort_by_key(|b| b.node_id);
        ClusterInfo {
            cluster_id,
            controller_id,
            brokers,
        }
    }
}

/// The first Kafka error among a response's (error code, message) results for `topic`.
fn check_topic<'r>(
    topic: &str,
    results: impl IntoIterator<Item = (i16, Option<&'r str>)>,
) -> Result<(), ClientError> {
    for (code, message) in results {
        ClientError::check(code, || format!("topic '{topic}'"), message)?;
    }
    Ok(())
}
