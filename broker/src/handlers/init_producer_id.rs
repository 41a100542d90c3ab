//! InitProducerId: a fresh producer id for idempotent producers, also when the client names the
//! id and epoch it had. Transactions are not served yet.

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};

use crate::errors;
use crate::metadata::calls;
use crate::shard::Shard;

pub async fn handle(shard: &Rc<Shard>, request: InitProducerIdRequest) -> InitProducerIdResponse {
    if request.transactional_id.is_some() {
        return InitProducerIdResponse {
            error_code: error_code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            producer_id: -1,
            producer_epoch: -1,
            ..Default::default()
        };
    }
    // A producer without a transactional id that names its current id and epoch (KIP-360, after
    // a fatal error) gets a new id, as Kafka's coordinator answers it: bumping the epoch of an id
    // the client names would let one client fence another's producer.
    match calls::allocate_producer_id(shard).await {
        Ok(id) => InitProducerIdResponse {
            error_code: error_code::NONE,
            producer_id: id,
            producer_epoch: 0,
            ..Default::default()
        },
        Err(e) => {
            tracing::warn!(error = %e, "InitProducerId failed");
            InitProducerIdResponse {
                error_code: errors::controller_error_code(&e),
                producer_id: -1,
                producer_epoch: -1,
                ..Default::default()
            }
        }
    }
}
