//! How shard 0's metadata controller reaches the quorum: each topic change is planned against
//! the quorum's image, proposed, and answered once committed and applied to this node's broker
//! image. Lives on shard 0 beside the controller task.

use std::collections::BTreeMap;
use std::rc::Rc;

use futures::channel::oneshot;
use glommio::channels::local_channel::LocalSender;
use riffle_controller::image::MetadataError;
use riffle_controller::node::ProposeError;

use super::driver::Event;
use crate::metadata::ControllerError;

/// A topic change for the quorum, answered on `reply` once applied here.
pub(crate) struct TopicChange {
    pub(crate) change: Change,
    pub(crate) reply: oneshot::Sender<Result<(), ProposeError>>,
}

pub(crate) enum Change {
    Create {
        name: String,
        partitions: usize,
        replication_factor: i32,
        configs: BTreeMap<String, String>,
    },
    Delete {
        name: String,
    },
    CreatePartitions {
        name: String,
        total: usize,
    },
    SetConfigs {
        name: String,
        configs: BTreeMap<String, String>,
    },
}

/// The metadata controller's handle on the controller task.
#[derive(Clone)]
pub struct ClusterClient {
    pub(super) events: Rc<LocalSender<Event>>,
}

impl ClusterClient {
    /// Proposes `change` and waits until it is committed and applied to this node's image.
    pub(crate) async fn change(&self, change: Change) -> Result<(), ControllerError> {
        let (reply, answer) = oneshot::channel();
        self.events
            .send(Event::Change(TopicChange { change, reply }))
            .await
            .map_err(|_| unavailable("the controller task has stopped"))?;
        answer
            .await
            .map_err(|_| unavailable("the controller task has stopped"))?
            .map_err(controller_error)
    }
}

fn unavailable(reason: &str) -> ControllerError {
    ControllerError::Unavailable {
        reason: reason.to_string(),
    }
}

/// The quorum's refusal in the broker's error language (Kafka's codes, `errors.rs`).
fn controller_error(error: ProposeError) -> ControllerError {
    match error {
        ProposeError::Rejected(rejected) => match rejected {
            MetadataError::TopicAlreadyExists { topic } => {
                ControllerError::TopicExists { name: topic }
            }
            MetadataError::UnknownTopicOrPartition { topic } => {
                ControllerError::UnknownTopic { name: topic }
            }
            MetadataError::InvalidTopic { reason, .. } => ControllerError::InvalidTopicName {
                reason: reason.to_string(),
            },
            MetadataError::InvalidPartitions { reason } => {
                ControllerError::InvalidPartitions { reason }
            }
            MetadataError::InvalidReplicationFactor {
                requested,
                available,
            } => ControllerError::InvalidReplicationFactor {
                factor: requested as i16,
                available,
            },
            MetadataError::InvalidConfig { reason } => ControllerError::InvalidConfig { reason },
            MetadataError::PolicyViolation { reason } => {
                ControllerError::PolicyViolation { reason }
            }
            other => unavailable(&other.to_string()),
        },
        // No leader, no majority, or too much pending: retriable (Kafka answers a controller
        // that cannot commit in time with REQUEST_TIMED_OUT; NOT_CONTROLLER is never shown,
        // not even in the message).
        ProposeError::NotController { .. } => ControllerError::QuorumUnavailable {
            reason: "the controller quorum has no leader (an election is under way, or no \
                     majority of its voters is reachable)"
                .into(),
        },
        other => ControllerError::QuorumUnavailable {
            reason: other.to_string(),
        },
    }
}
