//! DescribeCluster: this node, its cluster id and the controller.

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use riffle_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};

use crate::authorized_operations;
use crate::shard::Shard;

pub fn handle(shard: &Rc<Shard>, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let config = shard.config();
    let (host, port) = config.advertised_host_port();
    DescribeClusterResponse {
        error_code: error_code::NONE,
        cluster_id: config.cluster_id.clone(),
        controller_id: config.node_id,
        brokers: vec![DescribeClusterBroker {
            broker_id: config.node_id,
            host,
            port,
            rack: None,
            // A single node is never fenced from itself (v2, KIP-1073).
            is_fenced: false,
        }],
        cluster_authorized_operations: authorized_operations::bits(
            request.include_cluster_authorized_operations,
            authorized_operations::CLUSTER,
        ),
        ..Default::default()
    }
}
