//! FindCoordinator: this broker coordinates every group (it is the only node). Transactions are
//! not served yet, so a transactional id gets COORDINATOR_NOT_AVAILABLE.

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::find_coordinator_response::Coordinator;
use riffle_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};

use crate::shard::Shard;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

fn coordinator_for(shard: &Shard, key: String, key_type: i8) -> Coordinator {
    let (code, message) = match key_type {
        KEY_TYPE_GROUP => (error_code::NONE, None),
        KEY_TYPE_TRANSACTION => (
            error_code::COORDINATOR_NOT_AVAILABLE,
            Some("transactions are not served yet".to_string()),
        ),
        _ => (
            error_code::INVALID_REQUEST,
            Some(format!("unknown coordinator key type {key_type}")),
        ),
    };
    if code != error_code::NONE {
        return Coordinator {
            key,
            node_id: -1,
            host: String::new(),
            port: -1,
            error_code: code,
            error_message: message,
        };
    }
    let (host, port) = shard.config().advertised_host_port();
    Coordinator {
        key,
        node_id: shard.config().node_id,
        host,
        port,
        error_code: code,
        error_message: None,
    }
}

pub fn handle(shard: &Rc<Shard>, request: FindCoordinatorRequest) -> FindCoordinatorResponse {
    // v0–3 ask for one key, v4+ for a batch.
    let single = coordinator_for(shard, request.key, request.key_type);
    FindCoordinatorResponse {
        error_code: single.error_code,
        error_message: single.error_message.clone(),
        node_id: single.node_id,
        host: single.host.clone(),
        port: single.port,
        coordinators: request
            .coordinator_keys
            .into_iter()
            .map(|key| coordinator_for(shard, key, request.key_type))
            .collect(),
        ..Default::default()
    }
}
