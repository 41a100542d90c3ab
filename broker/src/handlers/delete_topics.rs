//! DeleteTopics: the controller removes the topic from the image, then each owner shard closes
//! the topic's partitions and deletes their files, and every group coordinator forgets the
//! offsets committed for it, before the answer goes out.

use std::rc::Rc;
use std::sync::Arc;

use riffle_protocol::messages::delete_topics_response::DeletableTopicResult;
use riffle_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use riffle_protocol::{error_code, RequestHeader, Uuid};

use super::on_controller;
use crate::metadata::image::TopicMeta;
use crate::partition::{partition_dir, PartitionKey};
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    _header: &RequestHeader,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    // v0–5 name topics; v6 names or ids
    let mut wanted: Vec<(Option<String>, Uuid)> = request
        .topic_names
        .into_iter()
        .map(|n| (Some(n), Uuid::default()))
        .collect();
    wanted.extend(request.topics.into_iter().map(|t| (t.name, t.topic_id)));
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        let resolved = match &name {
            Some(n) => Ok(n.clone()),
            None => shard
                .image()
                .topic_by_id(&id)
                .map(|t| t.name.clone())
                .ok_or((
                    error_code::UNKNOWN_TOPIC_ID,
                    format!("no topic with id {id}"),
                )),
        };
        let outcome = match resolved {
            Err(e) => Err(e),
            Ok(n) => {
                on_controller(shard, move |s, controller| async move {
                    controller.delete_topic(&s, &n).await
                })
                .await
            }
        };
        responses.push(match outcome {
            Ok(topic) => {
                delete_partition_files(shard, &topic).await;
                forget_committed_offsets(shard, &topic.name).await;
                tracing::info!(topic = %topic.name, "deleted topic");
                DeletableTopicResult {
                    name: Some(topic.name.clone()),
                    topic_id: topic.uuid(),
                    error_code: error_code::NONE,
                    error_message: None,
                }
            }
            Err((code, message)) => DeletableTopicResult {
                name,
                topic_id: id,
                error_code: code,
                error_message: Some(message),
            },
        });
    }
    DeleteTopicsResponse {
        responses,
        ..Default::default()
    }
}

/// Closes and deletes every partition of a deleted topic on its owner shard.
async fn delete_partition_files(shard: &Rc<Shard>, topic: &Arc<TopicMeta>) {
    let work = topic.partitions.iter().enumerate().map(|(index, meta)| {
        let key = PartitionKey { topic_id: topic.id, partition: index as i32 };
        let name = topic.name.clone();
        shard.submit_to(meta.shard as usize, move |s| async move {
            if let Some(p) = s.forget_partition(&key) {
                p.close().await;
            }
            let dir = partition_dir(&s.config().data_dir, &name, key.partition);
            let removed = glommio::executor()
                .spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                })
                .await;
            if let Err(e) = removed {
                tracing::error!(topic = %name, partition = key.partition, error = %e, "cannot delete partition files");
            }
        })
    });
    futures::future::join_all(work).await;
}

/// Removes every group's committed offsets for a deleted topic, on every shard (as Kafka does), so
/// that a topic created later under the same name starts without them.
async fn forget_committed_offsets(shard: &Rc<Shard>, topic: &str) {
    let work = (0..shard.shared.shard_count()).map(|target| {
        let topic = topic.to_string();
        shard.submit_to(target, move |s| async move {
            s.group_coordinator().forget_topic(&topic).await
        })
    });
    futures::future::join_all(work).await;
}
