//! DescribeCluster: the cluster id, the brokers and the active controller. With a controller
//! quorum, every live registered broker (fenced ones too when v2 asks, marked so) and the quorum's
//! leader as controller when it is a broker; alone, this node. As on a Kafka broker, asking a
//! broker for controllers (endpoint type 2, KIP-919) is MISMATCHED_ENDPOINT_TYPE: the controller
//! listeners speak Raft, not Kafka.

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use riffle_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};

use super::metadata::brokers_and_controller;
use crate::authorized_operations;
use crate::shard::Shard;

/// KIP-919's endpoint types.
const ENDPOINT_TYPE_BROKER: i8 = 1;

pub fn handle(shard: &Rc<Shard>, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let config = shard.config();
    let mut response = DescribeClusterResponse {
        error_code: error_code::NONE,
        endpoint_type: ENDPOINT_TYPE_BROKER,
        cluster_id: config.cluster_id.clone(),
        cluster_authorized_operations: authorized_operations::bits(
            request.include_cluster_authorized_operations,
            authorized_operations::CLUSTER,
        ),
        ..Default::default()
    };
    if request.endpoint_type != ENDPOINT_TYPE_BROKER {
        response.error_code = error_code::MISMATCHED_ENDPOINT_TYPE;
        response.error_message = Some(format!(
            "endpoint type {} was asked of a broker listener, which describes brokers (1) only",
            request.endpoint_type
        ));
        response.controller_id = -1;
        return response;
    }
    let (live, controller_id) = brokers_and_controller(shard);
    let mut brokers: Vec<DescribeClusterBroker> = live
        .into_iter()
        .map(|b| DescribeClusterBroker {
            broker_id: b.node_id,
            host: b.host,
            port: b.port,
            rack: b.rack,
            is_fenced: false,
        })
        .collect();
    if request.include_fenced_brokers {
        let members = shard.image().cluster.clone();
        let fenced = members
            .iter()
            .flat_map(|m| m.brokers.iter())
            .filter(|b| b.fenced);
        brokers.extend(fenced.map(|b| DescribeClusterBroker {
            broker_id: b.node_id,
            host: b.host.clone(),
            port: b.port,
            rack: b.rack.clone(),
            is_fenced: true,
        }));
        brokers.sort_by_key(|b| b.broker_id);
    }
    response.controller_id = controller_id;
    response.brokers = brokers;
    response
}
