//! ListConfigResources (KIP-1142; v0 was ListClientMetricsResources): the resources whose
//! configs DescribeConfigs answers: topics, this broker and its loggers, and groups (those the
//! coordinators hold and those with stored configs). Riffle has no client-metrics resources, so
//! v0 lists none.

use std::collections::BTreeSet;
use std::rc::Rc;

use riffle_protocol::messages::list_config_resources_response::ConfigResource;
use riffle_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};
use riffle_protocol::{error_code, RequestHeader};

use crate::groups::request as group_request;
use crate::shard::Shard;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;
const CLIENT_METRICS: i8 = 16;
const GROUP: i8 = 32;
/// The types listed when the request names none, as Kafka lists them.
const SUPPORTED: &[i8] = &[TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP];

pub async fn handle(
    shard: &Rc<Shard>,
    header: &RequestHeader,
    request: ListConfigResourcesRequest,
) -> ListConfigResourcesResponse {
    let mut types = if header.request_api_version == 0 {
        vec![CLIENT_METRICS]
    } else {
        request.resource_types
    };
    if types.is_empty() {
        types = SUPPORTED.to_vec();
    }
    if let Some(t) = types.iter().find(|t| !SUPPORTED.contains(t)) {
        tracing::debug!(
            resource_type = t,
            "ListConfigResources of an unsupported type"
        );
        return ListConfigResourcesResponse {
            error_code: error_code::UNSUPPORTED_VERSION,
            ..Default::default()
        };
    }
    let mut resources = Vec::new();
    for resource_type in types {
        for name in names(shard, resource_type).await {
            resources.push(ConfigResource {
                resource_name: name,
                resource_type,
            });
        }
    }
    ListConfigResourcesResponse {
        error_code: error_code::NONE,
        config_resources: resources,
        ..Default::default()
    }
}

/// The names of every resource of one type, sorted.
async fn names(shard: &Rc<Shard>, resource_type: i8) -> Vec<String> {
    let image = shard.image();
    match resource_type {
        TOPIC => image.topics.keys().cloned().collect(),
        BROKER | BROKER_LOGGER => vec![shard.config().node_id.to_string()],
        GROUP => {
            let mut groups: BTreeSet<String> = image.group_configs.keys().cloned().collect();
            if let Ok(listed) = group_request::list_all(shard).await {
                groups.extend(listed.into_iter().map(|g| g.group_id));
            }
            groups.into_iter().collect()
        }
        _ => Vec::new(),
    }
}
