//! FindCoordinator: no group or transaction coordinator runs yet, so every key gets
//! COORDINATOR_NOT_AVAILABLE (clients retry; manual assignment needs no coordinator). It is
//! advertised anyway because librdkafka takes its presence as the sign that LZ4 is supported.

use riffle_protocol::error_code;
use riffle_protocol::messages::find_coordinator_response::Coordinator;
use riffle_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};

const MESSAGE: &str = "consumer groups and transactions are not served yet";

pub fn handle(request: FindCoordinatorRequest) -> FindCoordinatorResponse {
    FindCoordinatorResponse {
        error_code: error_code::COORDINATOR_NOT_AVAILABLE,
        error_message: Some(MESSAGE.to_string()),
        node_id: -1,
        host: String::new(),
        port: -1,
        coordinators: request
            .coordinator_keys
            .into_iter()
            .map(|key| Coordinator {
                key,
                node_id: -1,
                host: String::new(),
                port: -1,
                error_code: error_code::COORDINATOR_NOT_AVAILABLE,
                error_message: Some(MESSAGE.to_string()),
            })
            .collect(),
        ..Default::default()
    }
}
