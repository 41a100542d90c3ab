//! Cluster metadata: the immutable image every shard reads, its store, and the controller that
//! changes it. The controller runs on shard 0 only; other shards send it a `ControllerRequest`.
//! Every change builds a new image, persists it, publishes it whole, then has every shard apply
//! it (`Shard::apply_metadata`): closing and deleting the partitions of deleted topics, applying
//! changed topic configs.

pub mod image;
pub mod store;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use glommio::sync::Semaphore;
use riffle_protocol::Uuid;

use crate::broker_config;
use crate::client_quotas::QuotaEntry;
use crate::cluster::{Change, ClusterClient};
use crate::group_config;
use crate::shard::{Shard, ShardRequest, ShardResponse};
use crate::topic_config;
use image::{validate_topic_name, MetadataImage, PartitionMeta, TopicMeta};

/// A refused or failed metadata change; `errors::controller_error_code` gives its Kafka code, and
/// its text is the error message clients see.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ControllerError {
    #[error("topic '{name}' already exists")]
    TopicExists { name: String },
    #[error("topic '{name}' does not exist")]
    UnknownTopic { name: String },
    #[error("no topic with id {id}")]
    UnknownTopicId { id: Uuid },
    #[error("invalid topic name: {reason}")]
    InvalidTopicName { reason: String },
    #[error("{reason}")]
    InvalidPartitions { reason: String },
    /// `available`: unfenced registered brokers (1 on a single node).
    #[error("replication factor {factor} is larger than the {available} available broker(s)")]
    InvalidReplicationFactor { factor: i16, available: usize },
    #[error("{reason}")]
    InvalidConfig { reason: String },
    /// A change past one of the cluster's limits (topics, metadata size).
    #[error("{reason}")]
    PolicyViolation { reason: String },
    /// A broker config that only the config file sets.
    #[error("{reason}")]
    NotDynamic { reason: String },
    #[error("cannot persist metadata: {reason}")]
    Persist { reason: String },
    #[error("the controller is not available: {reason}")]
    Unavailable { reason: String },
    /// The controller quorum did not commit the change in time (no leader, no majority):
    /// retriable, and nothing was changed unless a later Metadata shows it.
    #[error("the controller quorum did not commit the change: {reason}")]
    QuorumUnavailable { reason: String },
}

/// What other shards ask of the controller.
#[derive(Debug)]
pub enum ControllerRequest {
    CreateTopic {
        topic: NewTopic,
        validate_only: bool,
    },
    DeleteTopic {
        name: String,
    },
    CreatePartitions {
        name: String,
        count: i32,
        validate_only: bool,
    },
    SetTopicConfigs {
        name: String,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    },
    SetBrokerConfigs {
        configs: BTreeMap<String, String>,
        validate_only: bool,
    },
    SetGroupConfigs {
        group_id: String,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    },
    SetClientQuotas {
        quotas: Vec<QuotaEntry>,
    },
    AllocateProducerId,
}

/// The controller's answer to a `ControllerRequest`, one variant per request.
#[derive(Debug)]
pub enum ControllerResponse {
    Topic(Result<Arc<TopicMeta>, ControllerError>),
    Done(Result<(), ControllerError>),
    ProducerId(Result<i64, ControllerError>),
}

/// A topic to create, as CreateTopics or auto-creation asks.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub num_partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

/// Places `count` new partitions, refusing when a shard would hold more than `cap` partitions
/// (each open partition costs descriptors, memory and pre-allocated disk on its shard).
fn place_within_cap(
    image: &MetadataImage,
    count: usize,
    shards: usize,
    node_id: i32,
    cap: usize,
) -> Result<Vec<PartitionMeta>, ControllerError> {
    let placed = image.place_partitions(count, shards, node_id);
    let mut load = image.partitions_per_shard(shards);
    for p in &placed {
        load[p.shard as usize] += 1;
    }
    let fullest = load.iter().copied().max().unwrap_or(0);
    if fullest > cap {
        return Err(ControllerError::InvalidPartitions {
            reason: format!(
                "{count} more partitions would put {fullest} on one shard; topic_partitions_per_shard is {cap}"
            ),
        });
    }
    Ok(placed)
}

/// The metadata controller. Lives on shard 0 for the life of the process.
pub struct Controller {
    data_dir: PathBuf,
    /// Serialises changes: each one reads the image, persists the next and publishes it.
    change: Semaphore,
    /// With a controller quorum: topic changes go to it, and come back through
    /// `update_topics` once committed.
    quorum: RefCell<Option<ClusterClient>>,
}

impl Controller {
    pub fn new(data_dir: PathBuf) -> Self {
        Controller {
            data_dir,
            change: Semaphore::new(1),
            quorum: RefCell::new(None),
        }
    }

    /// From now on topics are created, deleted, grown and configured through the quorum.
    pub fn use_quorum(&self, client: ClusterClient) {
        *self.quorum.borrow_mut() = Some(client);
    }

    fn quorum(&self) -> Option<ClusterClient> {
        self.quorum.borrow().clone()
    }

    /// Applies the quorum's committed topics to this node's image (`cluster`), persisted and
    /// published like any change.
    pub async fn update_topics(
        &self,
        shard: &Rc<Shard>,
        f: impl FnOnce(&mut MetadataImage),
    ) -> Result<(), ControllerError> {
        self.change(shard, |image| {
            f(image);
            Ok(())
        })
        .await
    }

    /// Applies `f` to a copy of the current image; if it succeeds, persists and publishes the copy.
    async fn change<R>(
        &self,
        shard: &Rc<Shard>,
        f: impl FnOnce(&mut MetadataImage) -> Result<R, ControllerError>,
    ) -> Result<R, ControllerError> {
        let _permit =
            self.change
                .acquire_permit(1)
                .await
                .map_err(|e| ControllerError::Unavailable {
                    reason: e.to_string(),
                })?;
        let current = shard.image();
        let mut next = (*current).clone();
        let result = f(&mut next)?;
        let topics_changed = next.topics != current.topics;
        next.version += 1;
        let next = Arc::new(next);
        let to_save = next.clone();
        let dir = self.data_dir.clone();
        glommio::executor()
            .spawn_blocking(move || store::save(&dir, &to_save))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot persist metadata");
                ControllerError::Persist {
                    reason: e.to_string(),
                }
            })?;
        shard.shared.image.store(next);
        if topics_changed {
            shard.apply_metadata_everywhere().await;
        }
        Ok(result)
    }

    /// Creates one topic (or only validates it). Placement balances partitions over shards.
    pub async fn create_topic(
        &self,
        shard: &Rc<Shard>,
        topic: NewTopic,
        validate_only: bool,
    ) -> Result<Arc<TopicMeta>, ControllerError> {
        let shards = shard.shared.shard_count();
        let node_id = shard.config().node_id;
        let default_partitions = shard.config().num_partitions;
        let cap = shard.config().topic_partitions_per_shard;
        let check = move |image: &MetadataImage| -> Result<TopicMeta, ControllerError> {
            validate_topic_name(&topic.name)
                .map_err(|reason| ControllerError::InvalidTopicName { reason })?;
            if image.topic(&topic.name).is_some() {
                return Err(ControllerError::TopicExists {
                    name: topic.name.clone(),
                });
            }
            let partitions = match topic.num_partitions {
                -1 => default_partitions,
                n if n >= 1 => n,
                n => {
                    return Err(ControllerError::InvalidPartitions {
                        reason: format!("number of partitions must be at least 1, got {n}"),
                    })
                }
            };
            const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;
            if partitions > MAX_PARTITIONS_PER_TOPIC {
                return Err(ControllerError::InvalidPartitions {
                    reason: format!("at most {MAX_PARTITIONS_PER_TOPIC} partitions per topic"),
                });
            }
            if !(topic.replication_factor == -1 || topic.replication_factor == 1) {
                return Err(ControllerError::InvalidReplicationFactor {
                    factor: topic.replication_factor,
                    available: 1,
                });
            }
            for (k, v) in &topic.configs {
                topic_config::validate(k, Some(v))
                    .map_err(|reason| ControllerError::InvalidConfig { reason })?;
            }
            Ok(TopicMeta {
                name: topic.name.clone(),
                id: rand::random(),
                partitions: place_within_cap(image, partitions as usize, shards, node_id, cap)?,
                configs: topic.configs.clone(),
            })
        };
        if validate_only {
            return check(&shard.image()).map(Arc::new);
        }
        if let Some(quorum) = self.quorum() {
            let planned = check(&shard.image())?;
            let name = planned.name.clone();
            let change = Change::Create {
                name: name.clone(),
                partitions: planned.partitions.len(),
                replication_factor: 1,
                configs: planned.configs,
            };
            quorum.change(change).await?;
            return committed_topic(shard, &name);
        }
        self.change(shard, |image| {
            let meta = Arc::new(check(image)?);
            image.topics.insert(meta.name.clone(), meta.clone());
            Ok(meta)
        })
        .await
    }

    /// Removes a topic from the image; the caller then has its partitions deleted on their shards.
    pub async fn delete_topic(
        &self,
        shard: &Rc<Shard>,
        name: &str,
    ) -> Result<Arc<TopicMeta>, ControllerError> {
        if let Some(quorum) = self.quorum() {
            let deleted = shard.image().topic(name).cloned().ok_or_else(|| {
                ControllerError::UnknownTopic {
                    name: name.to_string(),
                }
            })?;
            let name = name.to_string();
            quorum.change(Change::Delete { name }).await?;
            return Ok(deleted);
        }
        self.change(shard, |image| {
            image
                .topics
                .remove(name)
                .ok_or_else(|| ControllerError::UnknownTopic {
                    name: name.to_string(),
                })
        })
        .await
    }

    /// Grows a topic to `count` partitions.
    pub async fn create_partitions(
        &self,
        shard: &Rc<Shard>,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        let shards = shard.shared.shard_count();
        let node_id = shard.config().node_id;
        let cap = shard.config().topic_partitions_per_shard;
        let check = |image: &MetadataImage| -> Result<TopicMeta, ControllerError> {
            let topic = image
                .topic(name)
                .ok_or_else(|| ControllerError::UnknownTopic {
                    name: name.to_string(),
                })?;
            let current = topic.partitions.len() as i32;
            if count <= current {
                return Err(ControllerError::InvalidPartitions {
                    reason: format!("topic '{name}' has {current} partitions; the new count must be larger, got {count}"),
                });
            }
            let mut grown = (**topic).clone();
            let added = (count - current) as usize;
            grown
                .partitions
                .extend(place_within_cap(image, added, shards, node_id, cap)?);
            Ok(grown)
        };
        if validate_only {
            return check(&shard.image()).map(|_| ());
        }
        if let Some(quorum) = self.quorum() {
            let grown = check(&shard.image())?;
            let change = Change::CreatePartitions {
                name: name.to_string(),
                total: grown.partitions.len(),
            };
            return quorum.change(change).await;
        }
        self.change(shard, |image| {
            let grown = check(image)?;
            image.topics.insert(name.to_string(), Arc::new(grown));
            Ok(())
        })
        .await
    }

    /// Replaces a topic's config overrides after validating every key.
    pub async fn set_topic_configs(
        &self,
        shard: &Rc<Shard>,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<TopicMeta>, ControllerError> {
        let check = |image: &MetadataImage| -> Result<TopicMeta, ControllerError> {
            let topic = image
                .topic(name)
                .ok_or_else(|| ControllerError::UnknownTopic {
                    name: name.to_string(),
                })?;
            for (k, v) in &configs {
                topic_config::validate(k, Some(v))
                    .map_err(|reason| ControllerError::InvalidConfig { reason })?;
            }
            let mut changed = (**topic).clone();
            changed.configs = configs.clone();
            Ok(changed)
        };
        if validate_only {
            return check(&shard.image()).map(Arc::new);
        }
        if let Some(quorum) = self.quorum() {
            check(&shard.image())?;
            let change = Change::SetConfigs {
                name: name.to_string(),
                configs: configs.clone(),
            };
            quorum.change(change).await?;
            return committed_topic(shard, name);
        }
        self.change(shard, |image| {
            let changed = Arc::new(check(image)?);
            image.topics.insert(name.to_string(), changed.clone());
            Ok(changed)
        })
        .await
    }

    /// Replaces the dynamic broker configs after validating every key.
    pub async fn set_broker_configs(
        &self,
        shard: &Rc<Shard>,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        for (k, v) in &configs {
            broker_config::validate(k, v, shard.config()).map_err(
                |(dynamic_refused, reason)| {
                    if dynamic_refused {
                        ControllerError::NotDynamic { reason }
                    } else {
                        ControllerError::InvalidConfig { reason }
                    }
                },
            )?;
        }
        if validate_only {
            return Ok(());
        }
        self.change(shard, |image| {
            image.broker_configs = configs;
            Ok(())
        })
        .await
    }

    /// Replaces a group's configs after validating every key; an empty set removes the entry.
    pub async fn set_group_configs(
        &self,
        shard: &Rc<Shard>,
        group_id: String,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        for (k, v) in &configs {
            group_config::validate(k, v)
                .map_err(|reason| ControllerError::InvalidConfig { reason })?;
        }
        if validate_only {
            return Ok(());
        }
        self.change(shard, |image| {
            if configs.is_empty() {
                image.group_configs.remove(&group_id);
            } else {
                image.group_configs.insert(group_id, configs);
            }
            Ok(())
        })
        .await
    }

    /// Replaces the client quotas (validated by the caller, `client_quotas::alter`).
    pub async fn set_client_quotas(
        &self,
        shard: &Rc<Shard>,
        quotas: Vec<QuotaEntry>,
    ) -> Result<(), ControllerError> {
        self.change(shard, |image| {
            image.client_quotas = quotas;
            Ok(())
        })
        .await
    }

    /// Hands out a new producer id (InitProducerId), persisted so ids are never reused.
    pub async fn allocate_producer_id(&self, shard: &Rc<Shard>) -> Result<i64, ControllerError> {
        self.change(shard, |image| {
            let id = image.next_producer_id;
            image.next_producer_id += 1;
            Ok(id)
        })
        .await
    }
}

/// A topic as this node's image has it once the quorum's change was applied here.
fn committed_topic(shard: &Rc<Shard>, name: &str) -> Result<Arc<TopicMeta>, ControllerError> {
    shard
        .image()
        .topic(name)
        .cloned()
        .ok_or_else(|| ControllerError::UnknownTopic {
            name: name.to_string(),
        })
}

impl Controller {
    /// Serves a request on shard 0.
    pub async fn serve(
        self: Rc<Self>,
        shard: &Rc<Shard>,
        request: ControllerRequest,
    ) -> ControllerResponse {
        match request {
            ControllerRequest::CreateTopic {
                topic,
                validate_only,
            } => ControllerResponse::Topic(self.create_topic(shard, topic, validate_only).await),
            ControllerRequest::DeleteTopic { name } => {
                ControllerResponse::Topic(self.delete_topic(shard, &name).await)
            }
            ControllerRequest::CreatePartitions {
                name,
                count,
                validate_only,
            } => ControllerResponse::Done(
                self.create_partitions(shard, &name, count, validate_only)
                    .await,
            ),
            ControllerRequest::SetTopicConfigs {
                name,
                configs,
                validate_only,
            } => ControllerResponse::Topic(
                self.set_topic_configs(shard, &name, configs, validate_only)
                    .await,
            ),
            ControllerRequest::SetBrokerConfigs {
                configs,
                validate_only,
            } => ControllerResponse::Done(
                self.set_broker_configs(shard, configs, validate_only).await,
            ),
            ControllerRequest::SetGroupConfigs {
                group_id,
                configs,
                validate_only,
            } => ControllerResponse::Done(
                self.set_group_configs(shard, group_id, configs, validate_only)
                    .await,
            ),
            ControllerRequest::SetClientQuotas { quotas } => {
                ControllerResponse::Done(self.set_client_quotas(shard, quotas).await)
            }
            ControllerRequest::AllocateProducerId => {
                ControllerResponse::ProducerId(self.allocate_producer_id(shard).await)
            }
        }
    }
}

impl ControllerResponse {
    /// The response `request` gets when it cannot be served at all.
    pub fn refused(request: &ControllerRequest, error: ControllerError) -> Self {
        match request {
            ControllerRequest::CreateTopic { .. }
            | ControllerRequest::DeleteTopic { .. }
            | ControllerRequest::SetTopicConfigs { .. } => ControllerResponse::Topic(Err(error)),
            ControllerRequest::CreatePartitions { .. }
            | ControllerRequest::SetBrokerConfigs { .. }
            | ControllerRequest::SetGroupConfigs { .. }
            | ControllerRequest::SetClientQuotas { .. } => ControllerResponse::Done(Err(error)),
            ControllerRequest::AllocateProducerId => ControllerResponse::ProducerId(Err(error)),
        }
    }
}

/// Sends `request` to the controller (shard 0).
async fn call(
    shard: &Rc<Shard>,
    request: ControllerRequest,
) -> Result<ControllerResponse, ControllerError> {
    match shard.call(0, ShardRequest::Controller(request)).await {
        Ok(ShardResponse::Controller(response)) => Ok(response),
        Ok(other) => unreachable!("a controller request is answered by the controller: {other:?}"),
        Err(gone) => Err(ControllerError::Unavailable {
            reason: gone.to_string(),
        }),
    }
}

/// The calls handlers make to the controller, each answered with its own result type.
pub mod calls {
    use super::*;

    async fn topic(
        shard: &Rc<Shard>,
        request: ControllerRequest,
    ) -> Result<Arc<TopicMeta>, ControllerError> {
        match call(shard, request).await? {
            ControllerResponse::Topic(result) => result,
            other => unreachable!("answered by Topic, not {other:?}"),
        }
    }

    pub async fn create_topic(
        shard: &Rc<Shard>,
        topic: NewTopic,
        validate_only: bool,
    ) -> Result<Arc<TopicMeta>, ControllerError> {
        let request = ControllerRequest::CreateTopic {
            topic,
            validate_only,
        };
        self::topic(shard, request).await
    }

    pub async fn delete_topic(
        shard: &Rc<Shard>,
        name: String,
    ) -> Result<Arc<TopicMeta>, ControllerError> {
        topic(shard, ControllerRequest::DeleteTopic { name }).await
    }

    pub async fn set_topic_configs(
        shard: &Rc<Shard>,
        name: String,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<TopicMeta>, ControllerError> {
        let request = ControllerRequest::SetTopicConfigs {
            name,
            configs,
            validate_only,
        };
        topic(shard, request).await
    }

    pub async fn create_partitions(
        shard: &Rc<Shard>,
        name: String,
        count: i32,
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        let request = ControllerRequest::CreatePartitions {
            name,
            count,
            validate_only,
        };
        match call(shard, request).await? {
            ControllerResponse::Done(result) => result,
            other => unreachable!("answered by Done, not {other:?}"),
        }
    }

    pub async fn set_broker_configs(
        shard: &Rc<Shard>,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        let request = ControllerRequest::SetBrokerConfigs {
            configs,
            validate_only,
        };
        match call(shard, request).await? {
            ControllerResponse::Done(result) => result,
            other => unreachable!("answered by Done, not {other:?}"),
        }
    }

    pub async fn set_group_configs(
        shard: &Rc<Shard>,
        group_id: String,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        let request = ControllerRequest::SetGroupConfigs {
            group_id,
            configs,
            validate_only,
        };
        match call(shard, request).await? {
            ControllerResponse::Done(result) => result,
            other => unreachable!("answered by Done, not {other:?}"),
        }
    }

    pub async fn set_client_quotas(
        shard: &Rc<Shard>,
        quotas: Vec<QuotaEntry>,
    ) -> Result<(), ControllerError> {
        match call(shard, ControllerRequest::SetClientQuotas { quotas }).await? {
            ControllerResponse::Done(result) => result,
            other => unreachable!("answered by Done, not {other:?}"),
        }
    }

    pub async fn allocate_producer_id(shard: &Rc<Shard>) -> Result<i64, ControllerError> {
        match call(shard, ControllerRequest::AllocateProducerId).await? {
            ControllerResponse::ProducerId(result) => result,
            other => unreachable!("answered by ProducerId, not {other:?}"),
        }
    }
}
