//! A shard: one glommio executor pinned to one core, owning its partitions outright. Other shards
//! reach it only by sending it jobs over glommio's shared channels (`submit_to`), so nothing on the
//! data path is shared mutable state, and no task waker ever crosses a thread: each side of a
//! channel is woken by glommio's own cross-executor notification.

use std::any::Any;
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::channel::{mpsc, oneshot};
use futures::future::LocalBoxFuture;
use futures::StreamExt;
use glommio::channels::shared_channel::{self, SharedReceiver, SharedSender};
use glommio::sync::Semaphore;

use crate::config::BrokerConfig;
use crate::groups::GroupCoordinator;
use crate::metadata::image::MetadataImage;
use crate::metadata::Controller;
use crate::partition::{Partition, PartitionKey};
use crate::Shutdown;

/// A job's result, boxed to cross shards; `submit_to` downcasts it back. (Sync because glommio's
/// shared channel asks for it, though each item is only ever owned by one thread.)
type Reply = Box<dyn Any + Send + Sync>;

/// Work sent to a shard: built on the sender, run on the target shard.
type Job = Box<dyn FnOnce(Rc<Shard>) -> LocalBoxFuture<'static, Reply> + Send + Sync>;

/// What travels between two shards.
pub enum Envelope {
    Job { id: u64, job: Job },
    Reply { id: u64, value: Reply },
}

/// Jobs and replies queued between two shards before the channel applies backpressure.
const SHARD_CHANNEL_CAPACITY: usize = 1024;
/// How long a disconnecting shard waits for the replies it has queued to leave.
const DISCONNECT_FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// The channel ends of one shard: `to[j]` sends to shard j, `from[j]` receives from it.
pub struct Links {
    to: Vec<Option<SharedSender<Envelope>>>,
    from: Vec<Option<SharedReceiver<Envelope>>>,
}

/// A full mesh of shared channels between `shards` shards, one `Links` per shard.
pub fn mesh(shards: usize) -> Vec<Links> {
    let mut links: Vec<Links> = (0..shards)
        .map(|_| Links {
            to: (0..shards).map(|_| None).collect(),
            from: (0..shards).map(|_| None).collect(),
        })
        .collect();
    for i in 0..shards {
        for j in 0..shards {
            if i != j {
                let (tx, rx) = shared_channel::new_bounded(SHARD_CHANNEL_CAPACITY);
                links[i].to[j] = Some(tx);
                links[j].from[i] = Some(rx);
            }
        }
    }
    links
}

/// State every shard can read: configuration and the current metadata image.
/// Lives for the whole process; shared by all shards (read-only or atomic).
pub struct Shared {
    pub config: BrokerConfig,
    pub image: ArcSwap<MetadataImage>,
    pub shards: usize,
    pub shutting_down: AtomicBool,
}

impl Shared {
    pub fn shard_count(&self) -> usize {
        self.shards
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }
}

/// The target shard stopped before answering (only during shutdown, or when it died).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("shard {0} is shut down")]
pub struct ShardGone(pub usize);

/// One shard's state. Lives on its own core from start to shutdown.
pub struct Shard {
    pub id: usize,
    pub shared: Arc<Shared>,
    /// Resolves when the broker shuts down.
    pub shutdown: Shutdown,
    /// Partitions this shard owns, opened lazily on first use (or at start-up for existing ones).
    partitions: RefCell<HashMap<PartitionKey, Rc<PartitionSlot>>>,
    /// Bytes of requests read but not yet answered on this shard (backpressure).
    pub inflight_budget: Rc<Semaphore>,
    /// Only on shard 0: the metadata controller.
    pub controller: Option<Rc<Controller>>,
    /// The consumer groups whose slots this shard owns (set once at start-up).
    coordinator: OnceCell<Rc<GroupCoordinator>>,
    /// Per target shard, an in-order local queue that a pump task moves into the shared channel:
    /// queuing never waits, so jobs leave in the order they were submitted.
    outboxes: Vec<Option<mpsc::UnboundedSender<Envelope>>>,
    /// Submitted jobs waiting for their reply, by id, with the shard that runs them.
    pending: RefCell<HashMap<u64, (usize, oneshot::Sender<Reply>)>>,
    next_job_id: Cell<u64>,
    /// Per shard, whether it can answer no more (its channel to or from us closed): jobs for it
    /// fail at once with `ShardGone`.
    gone: Vec<Cell<bool>>,
    /// The tasks moving each outbox into its channel; awaited by `disconnect`.
    pumps: RefCell<Vec<glommio::Task<()>>>,
    /// The tasks receiving from each other shard; dropped (cancelled) by `disconnect`.
    receivers: RefCell<Vec<glommio::Task<()>>>,
}

/// A partition being opened or open. The semaphore makes concurrent first users wait for one open.
pub struct PartitionSlot {
    opening: Semaphore,
    partition: RefCell<Option<Rc<Partition>>>,
}

impl Shard {
    /// Creates the shard and connects its channels to every other shard (run on its executor).
    pub async fn start(
        id: usize,
        shared: Arc<Shared>,
        controller: Option<Rc<Controller>>,
        shutdown: Shutdown,
        links: Links,
    ) -> Rc<Self> {
        let budget = shared.config.shard_inflight_budget_bytes as u64;
        let mut outboxes = Vec::with_capacity(links.to.len());
        let mut pumps = Vec::new();
        for (target, to) in links.to.into_iter().enumerate() {
            match to {
                Some(sender) => {
                    let (tx, rx) = mpsc::unbounded();
                    outboxes.push(Some(tx));
                    pumps.push((target, sender, rx));
                }
                None => outboxes.push(None),
            }
        }
        let gone = (0..shared.shard_count())
            .map(|_| Cell::new(false))
            .collect();
        let shard = Rc::new(Shard {
            id,
            shared,
            shutdown,
            partitions: RefCell::new(HashMap::new()),
            inflight_budget: Rc::new(Semaphore::new(budget)),
            controller,
            coordinator: OnceCell::new(),
            outboxes,
            pending: RefCell::new(HashMap::new()),
            next_job_id: Cell::new(0),
            gone,
            pumps: RefCell::new(Vec::new()),
            receivers: RefCell::new(Vec::new()),
        });
        // Every end must connect on its own executor, and a connect waits for its peer: connect
        // all of them concurrently.
        let senders = futures::future::join_all(
            pumps
                .into_iter()
                .map(|(target, sender, rx)| async move { (target, sender.connect().await, rx) }),
        );
        let receivers = futures::future::join_all(
            links
                .from
                .into_iter()
                .enumerate()
                .filter_map(|(source, r)| r.map(|r| async move { (source, r.connect().await) })),
        );
        let (senders, receivers) = futures::future::join(senders, receivers).await;
        for (target, sender, mut queue) in senders {
            let this = shard.clone();
            let pump = glommio::spawn_local(async move {
                while let Some(envelope) = queue.next().await {
                    if sender.send(envelope).await.is_err() {
                        tracing::debug!(target, "shard channel closed");
                        break;
                    }
                }
                // Jobs queued to `target` will get no reply: fail them rather than hang.
                this.fail_pending_to(target);
            });
            shard.pumps.borrow_mut().push(pump);
        }
        let receiving = receivers
            .into_iter()
            .map(|(source, receiver)| {
                glommio::spawn_local(shard.clone().receive_from(source, receiver))
            })
            .collect();
        *shard.receivers.borrow_mut() = receiving;
        shard
    }

    /// Runs the jobs shard `source` sends and completes the replies it returns.
    async fn receive_from(
        self: Rc<Self>,
        source: usize,
        receiver: shared_channel::ConnectedReceiver<Envelope>,
    ) {
        while let Some(envelope) = receiver.recv().await {
            match envelope {
                Envelope::Job { id, job } => {
                    // Spawned in arrival order: jobs from one sender are first polled in the order
                    // sent, which keeps one connection's appends to a partition in order.
                    let shard = self.clone();
                    glommio::spawn_local(async move {
                        let value = job(shard.clone()).await;
                        shard.send_envelope(source, Envelope::Reply { id, value });
                    })
                    .detach();
                }
                Envelope::Reply { id, value } => {
                    let waiter = self.pending.borrow_mut().remove(&id);
                    if let Some((_, waiter)) = waiter {
                        let _ = waiter.send(value);
                    }
                }
            }
        }
        // `source` has exited: no reply of its can come any more.
        self.fail_pending_to(source);
    }

    /// Marks `target` gone and drops the reply slots of jobs sent to it: their callers get
    /// `ShardGone`, as does every job submitted to it from now on.
    fn fail_pending_to(&self, target: usize) {
        if let Some(gone) = self.gone.get(target) {
            gone.set(true);
        }
        let gone: Vec<_> = {
            let mut pending = self.pending.borrow_mut();
            let ids: Vec<u64> = pending
                .iter()
                .filter(|(_, (to, _))| *to == target)
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| pending.remove(&id))
                .collect()
        };
        drop(gone);
    }

    /// Cuts this shard off before its executor ends (shutdown, or a failed start): the replies
    /// already queued still leave, then its channels close, so a job another shard sent or sends
    /// it fails there with `ShardGone` instead of waiting for a shard that is gone. (An executor
    /// that just ends leaves its channel ends behind, parked in tasks that are never dropped.)
    pub async fn disconnect(&self) {
        for outbox in self.outboxes.iter().flatten() {
            outbox.close_channel();
        }
        let pumps = std::mem::take(&mut *self.pumps.borrow_mut());
        let flushed = futures::future::join_all(pumps);
        let timer = glommio::timer::sleep(DISCONNECT_FLUSH_TIMEOUT);
        // A pump still blocked at the deadline is dropped, which cancels it.
        let _ = futures::future::select(Box::pin(flushed), Box::pin(timer)).await;
        // Dropping a receiving task cancels it and drops its channel end, which the peer sees.
        let receiving = std::mem::take(&mut *self.receivers.borrow_mut());
        drop(receiving);
        let waiting = std::mem::take(&mut *self.pending.borrow_mut());
        drop(waiting);
    }

    fn send_envelope(&self, target: usize, envelope: Envelope) -> bool {
        self.outboxes
            .get(target)
            .and_then(Option::as_ref)
            .is_some_and(|q| q.unbounded_send(envelope).is_ok())
    }

    /// Opens this shard's consumer-group slots (start-up).
    pub async fn open_group_coordinator(&self) -> anyhow::Result<Rc<GroupCoordinator>> {
        let coordinator =
            GroupCoordinator::open(self.id, self.shared.shard_count(), &self.shared.config).await?;
        let _ = self.coordinator.set(coordinator.clone());
        Ok(coordinator)
    }

    /// The group coordinator of this shard.
    pub fn group_coordinator(&self) -> Rc<GroupCoordinator> {
        self.coordinator
            .get()
            .expect("the group coordinator opens before the listener")
            .clone()
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.shared.config
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.shared.image.load_full()
    }

    /// Runs `f` on shard `target` and returns its result. Runs inline when `target` is this shard,
    /// so callers see the same ordering either way: the job is started (local) or queued (remote)
    /// before this future first yields.
    pub async fn submit_to<R, F, Fut>(self: &Rc<Self>, target: usize, f: F) -> Result<R, ShardGone>
    where
        R: Send + Sync + 'static,
        F: FnOnce(Rc<Shard>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + 'static,
    {
        if target == self.id {
            return Ok(f(self.clone()).await);
        }
        if self.gone.get(target).is_some_and(Cell::get) {
            return Err(ShardGone(target));
        }
        let id = self.next_job_id.get();
        self.next_job_id.set(id + 1);
        let job: Job =
            Box::new(move |shard| Box::pin(async move { Box::new(f(shard).await) as Reply }));
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(id, (target, tx));
        if !self.send_envelope(target, Envelope::Job { id, job }) {
            self.pending.borrow_mut().remove(&id);
            return Err(ShardGone(target));
        }
        let value = rx.await.map_err(|_| ShardGone(target))?;
        Ok(*value
            .downcast::<R>()
            .expect("a reply has the type of its job"))
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use futures::FutureExt;
    use glommio::{LocalExecutorBuilder, Placement};

    use super::*;

    fn executor(name: &str) -> LocalExecutorBuilder {
        LocalExecutorBuilder::new(Placement::Unbound)
            .name(name)
            .io_memory(512 * 1024)
    }

    #[test]
    fn jobs_sent_to_a_shard_that_disconnects_resolve_with_shard_gone() {
        let shared = Arc::new(Shared {
            config: BrokerConfig::default(),
            image: ArcSwap::from_pointee(MetadataImage::default()),
            shards: 2,
            shutting_down: AtomicBool::new(false),
        });
        let (_keep, never) = oneshot::channel::<()>();
        let shutdown: Shutdown = never.map(|_| ()).boxed().shared();
        let job_started = Arc::new(AtomicBool::new(false));
        let mut links = mesh(2).into_iter();
        let (links0, links1) = (links.next().unwrap(), links.next().unwrap());

        let (shared1, shutdown1, started1) =
            (shared.clone(), shutdown.clone(), job_started.clone());
        let shard1 = executor("test-shard-1")
            .spawn(move || async move {
                let shard = Shard::start(1, shared1, None, shutdown1, links1).await;
                while !started1.load(Ordering::Acquire) {
                    glommio::timer::sleep(Duration::from_millis(5)).await;
                }
                shard.disconnect().await;
            })
            .unwrap();
        let shard0 = executor("test-shard-0")
            .spawn(move || async move {
                let shard = Shard::start(0, shared, None, shutdown, links0).await;
                // A job that never finishes on shard 1, in flight when shard 1 goes.
                let stuck = shard.submit_to(1, move |_| {
                    job_started.store(true, Ordering::Release);
                    futures::future::pending::<()>()
                });
                let limit = glommio::timer::sleep(Duration::from_secs(10));
                let stuck = match futures::future::select(Box::pin(stuck), Box::pin(limit)).await {
                    futures::future::Either::Left((r, _)) => r,
                    futures::future::Either::Right(_) => panic!("the in-flight job hangs"),
                };
                let after = shard.submit_to(1, |_| async { 7 }).await;
                (stuck.err().map(|g| g.0), after.err().map(|g| g.0))
            })
            .unwrap();
        let (stuck, after) = shard0.join().unwrap();
        shard1.join().unwrap();
        assert_eq!(
            stuck,
            Some(1),
            "the in-flight job resolves with ShardGone(1)"
        );
        assert_eq!(
            after,
            Some(1),
            "a job sent afterwards resolves with ShardGone(1)"
        );
    }
}
