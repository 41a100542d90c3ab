//! A shard: one glommio executor pinned to one core, owning its partitions outright. Other shards
//! reach it only by sending it jobs through its inbox (`submit_to`), so nothing on the data path is
//! shared mutable state.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use futures::channel::{mpsc, oneshot};
use futures::future::LocalBoxFuture;
use futures::StreamExt;
use glommio::sync::Semaphore;

use crate::config::BrokerConfig;
use crate::metadata::image::MetadataImage;
use crate::metadata::Controller;
use crate::partition::{Partition, PartitionKey};

/// Work sent to a shard: built on the sender, run on the target shard.
pub type Job = Box<dyn FnOnce(Rc<Shard>) -> LocalBoxFuture<'static, ()> + Send>;

/// State every shard can read: configuration, the current metadata image and the inboxes.
/// Lives for the whole process; shared by all shards (read-only or atomic).
pub struct Shared {
    pub config: BrokerConfig,
    pub image: ArcSwap<MetadataImage>,
    pub inboxes: Vec<mpsc::UnboundedSender<Job>>,
    pub shutting_down: AtomicBool,
}

impl Shared {
    pub fn shard_count(&self) -> usize {
        self.inboxes.len()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }
}

/// The target shard stopped before answering (only during shutdown).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("shard {0} is shut down")]
pub struct ShardGone(pub usize);

/// One shard's state. Lives on its own core from start to shutdown.
pub struct Shard {
    pub id: usize,
    pub shared: Arc<Shared>,
    /// Partitions this shard owns, opened lazily on first use (or at start-up for existing ones).
    partitions: RefCell<HashMap<PartitionKey, Rc<PartitionSlot>>>,
    /// Bytes of requests read but not yet answered on this shard (backpressure).
    pub inflight_budget: Rc<Semaphore>,
    /// Only on shard 0: the metadata controller.
    pub controller: Option<Rc<Controller>>,
}

/// A partition being opened or open. The semaphore makes concurrent first users wait for one open.
pub struct PartitionSlot {
    opening: Semaphore,
    partition: RefCell<Option<Rc<Partition>>>,
}

impl Shard {
    pub fn new(id: usize, shared: Arc<Shared>, controller: Option<Rc<Controller>>) -> Rc<Self> {
        let budget = shared.config.shard_inflight_budget_bytes as u64;
        Rc::new(Shard {
            id,
            shared,
            partitions: RefCell::new(HashMap::new()),
            inflight_budget: Rc::new(Semaphore::new(budget)),
            controller,
        })
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.shared.config
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.shared.image.load_full()
    }

    /// Runs the jobs other shards send to this one until the inbox closes.
    pub async fn run_inbox(self: Rc<Self>, mut inbox: mpsc::UnboundedReceiver<Job>) {
        while let Some(job) = inbox.next().await {
            // Spawned in arrival order: jobs from one sender are first polled in the order sent,
            // which keeps one connection's appends to a partition in order.
            glommio::spawn_local(job(self.clone())).detach();
        }
    }

    /// Runs `f` on shard `target` and returns its result. Runs inline when `target` is this shard,
    /// so callers see the same ordering either way: the job starts before this future first
    /// yields (remote: it is queued, in order, before the first await).
    pub async fn submit_to<R, F, Fut>(self: &Rc<Self>, target: usize, f: F) -> Result<R, ShardGone>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        if target == self.id {
            return Ok(f(self.clone()).await);
        }
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |shard| {
            Box::pin(async move {
                let _ = tx.send(f(shard).await);
            })
        });
        let inbox = self.shared.inboxes.get(target).ok_or(ShardGone(target))?;
        inbox.unbounded_send(job).map_err(|_| ShardGone(target))?;
        rx.await.map_err(|_| ShardGone(target))
    }

    /// Like `submit_to`, but the job is abandoned when the caller stops waiting (Fetch long-polls).
    pub async fn submit_cancellable<R, F, Fut>(
        self: &Rc<Self>,
        target: usize,
        f: F,
    ) -> Result<R, ShardGone>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        if target == self.id {
            return Ok(f(self.clone()).await);
        }
        let (mut tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |shard| {
            Box::pin(async move {
                let work = std::pin::pin!(f(shard));
                let cancelled = std::pin::pin!(tx.cancellation());
                if let futures::future::Either::Left((r, _)) =
                    futures::future::select(work, cancelled).await
                {
                    let _ = tx.send(r);
                }
            })
        });
        let inbox = self.shared.inboxes.get(target).ok_or(ShardGone(target))?;
        inbox.unbounded_send(job).map_err(|_| ShardGone(target))?;
        rx.await.map_err(|_| ShardGone(target))
    }

    /// The open partition `key` if this shard owns it per the current image, opening it on first use.
    /// `Err` carries the Kafka error code to answer with.
    pub async fn partition(self: &Rc<Self>, key: &PartitionKey) -> Result<Rc<Partition>, i16> {
        let slot = {
            let mut parts = self.partitions.borrow_mut();
            if let Some(slot) = parts.get(key) {
                if let Some(p) = slot.partition.borrow().as_ref() {
                    return Ok(p.clone());
                }
            }
            parts
                .entry(key.clone())
                .or_insert_with(|| {
                    Rc::new(PartitionSlot {
                        opening: Semaphore::new(1),
                        partition: RefCell::new(None),
                    })
                })
                .clone()
        };
        let _guard = slot
            .opening
            .acquire_permit(1)
            .await
            .map_err(|_| riffle_protocol::error_code::UNKNOWN_SERVER_ERROR)?;
        if let Some(p) = slot.partition.borrow().as_ref() {
            return Ok(p.clone());
        }
        let image = self.image();
        let topic = image
            .topic_by_id(&riffle_protocol::Uuid(key.topic_id))
            .ok_or(riffle_protocol::error_code::UNKNOWN_TOPIC_OR_PARTITION)?;
        let meta = topic
            .partitions
            .get(key.partition as usize)
            .ok_or(riffle_protocol::error_code::UNKNOWN_TOPIC_OR_PARTITION)?;
        if meta.shard as usize != self.id {
            return Err(riffle_protocol::error_code::NOT_LEADER_OR_FOLLOWER);
        }
        let partition = Partition::open(self.clone(), topic, key.partition).await?;
        tracing::info!(
            shard = self.id,
            topic = %topic.name,
            partition = key.partition,
            log_end_offset = partition.log.log_end_offset(),
            "shard {} opened partition {}-{}",
            self.id,
            topic.name,
            key.partition
        );
        *slot.partition.borrow_mut() = Some(partition.clone());
        Ok(partition)
    }

    /// Open partitions of this shard.
    pub fn open_partitions(&self) -> Vec<Rc<Partition>> {
        self.partitions
            .borrow()
            .values()
            .filter_map(|s| s.partition.borrow().clone())
            .collect()
    }

    /// Removes a partition from this shard (topic deleted); the caller deletes its files.
    pub fn forget_partition(&self, key: &PartitionKey) -> Option<Rc<Partition>> {
        self.partitions
            .borrow_mut()
            .remove(key)
            .and_then(|s| s.partition.borrow_mut().take())
    }

    /// Opens every partition the image places on this shard (recovery at start-up).
    pub async fn open_owned_partitions(self: &Rc<Self>) -> anyhow::Result<()> {
        let image = self.image();
        for topic in image.topics.values() {
            for (index, meta) in topic.partitions.iter().enumerate() {
                if meta.shard as usize == self.id {
                    let key = PartitionKey {
                        topic_id: topic.id,
                        partition: index as i32,
                    };
                    self.partition(&key).await.map_err(|code| {
                        anyhow::anyhow!(
                            "opening partition {}-{index} failed (Kafka error {code})",
                            topic.name
                        )
                    })?;
                }
            }
        }
        Ok(())
    }
}
