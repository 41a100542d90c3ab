//! Cluster metadata: the immutable image every shard reads, its store, and the controller that
//! changes it. The controller runs on shard 0 only; other shards reach it with `submit_to(0, ..)`.
//! Every change builds a new image, persists it, then publishes it whole.

pub mod image;
pub mod store;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use glommio::sync::Semaphore;
use riffle_protocol::error_code;

use crate::shard::Shard;
use crate::topic_config;
use image::{validate_topic_name, MetadataImage, TopicMeta};

/// A failed metadata change: Kafka error code and message.
pub type ControllerError = (i16, String);

/// A topic to create, as CreateTopics or auto-creation asks.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub num_partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

/// The metadata controller. Lives on shard 0 for the life of the process.
pub struct Controller {
    data_dir: PathBuf,
    /// Serialises changes: each one reads the image, persists the next and publishes it.
    change: Semaphore,
}

impl Controller {
    pub fn new(data_dir: PathBuf) -> Self {
        Controller {
            data_dir,
            change: Semaphore::new(1),
        }
    }

    /// Applies `f` to a copy of the current image; if it succeeds, persists and publishes the copy.
    async fn change<R>(
        &self,
        shard: &Rc<Shard>,
        f: impl FnOnce(&mut MetadataImage) -> Result<R, ControllerError>,
    ) -> Result<R, ControllerError> {
        let _permit = self
            .change
            .acquire_permit(1)
            .await
            .map_err(|e| (error_code::UNKNOWN_SERVER_ERROR, e.to_string()))?;
        let mut next = (*shard.image()).clone();
        let result = f(&mut next)?;
        next.version += 1;
        let next = Arc::new(next);
        let to_save = next.clone();
        let dir = self.data_dir.clone();
        glommio::executor()
            .spawn_blocking(move || store::save(&dir, &to_save))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot persist metadata");
                (
                    error_code::KAFKA_STORAGE_ERROR,
                    format!("cannot persist metadata: {e}"),
                )
            })?;
        shard.shared.image.store(next);
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
        let check = move |image: &MetadataImage| -> Result<TopicMeta, ControllerError> {
            validate_topic_name(&topic.name)
                .map_err(|m| (error_code::INVALID_TOPIC_EXCEPTION, m))?;
            if image.topic(&topic.name).is_some() {
                return Err((
                    error_code::TOPIC_ALREADY_EXISTS,
                    format!("topic '{}' already exists", topic.name),
                ));
            }
            let partitions = match topic.num_partitions {
                -1 => default_partitions,
                n if n >= 1 => n,
                n => {
                    return Err((
                        error_code::INVALID_PARTITIONS,
                        format!("number of partitions must be at least 1, got {n}"),
                    ))
                }
            };
            const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;
            if partitions > MAX_PARTITIONS_PER_TOPIC {
                return Err((
                    error_code::INVALID_PARTITIONS,
                    format!("at most {MAX_PARTITIONS_PER_TOPIC} partitions per topic"),
                ));
            }
            if !(topic.replication_factor == -1 || topic.replication_factor == 1) {
                return Err((
                    error_code::INVALID_REPLICATION_FACTOR,
                    format!(
                        "replication factor {} is larger than the 1 available broker",
                        topic.replication_factor
                    ),
                ));
            }
            for (k, v) in &topic.configs {
                topic_config::validate(k, Some(v)).map_err(|m| (error_code::INVALID_CONFIG, m))?;
            }
            Ok(TopicMeta {
                name: topic.name.clone(),
                id: rand::random(),
                partitions: image.place_partitions(partitions as usize, shards, node_id),
                configs: topic.configs.clone(),
            })
        };
        if validate_only {
            return check(&shard.image()).map(Arc::new);
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
        self.change(shard, |image| {
            image.topics.remove(name).ok_or((
                error_code::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic '{name}' does not exist"),
            ))
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
        let check = |image: &MetadataImage| -> Result<TopicMeta, ControllerError> {
            let topic = image.topic(name).ok_or((
                error_code::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic '{name}' does not exist"),
            ))?;
            let current = topic.partitions.len() as i32;
            if count <= current {
                return Err((
                    error_code::INVALID_PARTITIONS,
                    format!("topic '{name}' has {current} partitions; the new count must be larger, got {count}"),
                ));
            }
            let mut grown = (**topic).clone();
            grown.partitions.extend(image.place_partitions(
                (count - current) as usize,
                shards,
                node_id,
            ));
            Ok(grown)
        };
        if validate_only {
            return check(&shard.image()).map(|_| ());
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
            let topic = image.topic(name).ok_or((
                error_code::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic '{name}' does not exist"),
            ))?;
            for (k, v) in &configs {
                topic_config::validate(k, Some(v)).map_err(|m| (error_code::INVALID_CONFIG, m))?;
            }
            let mut changed = (**topic).clone();
            changed.configs = configs.clone();
            Ok(changed)
        };
        if validate_only {
            return check(&shard.image()).map(Arc::new);
        }
        self.change(shard, |image| {
            let changed = Arc::new(check(image)?);
            image.topics.insert(name.to_string(), changed.clone());
            Ok(changed)
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
