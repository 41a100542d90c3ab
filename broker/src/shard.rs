//! A shard: one glommio executor pinned to one core, owning its partitions outright. Other shards
//! reach it only by typed requests (`ShardRequest`) over glommio's shared channels, so nothing on
//! the data path is shared mutable state, and no task waker ever crosses a thread: each side of a
//! channel is woken by glommio's own cross-executor notification. The requests in flight from one
//! shard to another are bounded (`CALLS_IN_FLIGHT_MAX`): a sender waits for a slot, in order.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures::channel::{mpsc, oneshot};
use futures::StreamExt;
use glommio::channels::shared_channel::{self, SharedReceiver, SharedSender};
use glommio::sync::Semaphore;

use crate::admin::stats::{self, ShardStats};
use crate::cluster::ClusterView;
use crate::config::BrokerConfig;
use crate::groups::request::{GroupRequest, GroupResponse};
use crate::groups::{GroupCoordinator, GroupListing};
use crate::metadata::image::MetadataImage;
use crate::metadata::{Controller, ControllerError, ControllerRequest, ControllerResponse};
use crate::partition::commit_log::ShardCommitLog;
use crate::partition::error::{PartitionError, PartitionErrorKind};
use crate::partition::remove_partition_dir;
use crate::partition::reopen::OfflineLog;
use crate::partition::request::{PartitionRequest, PartitionResponse};
use crate::partition::{Partition, PartitionKey};
use crate::Shutdown;

/// Everything one shard may ask of another.
#[derive(Debug)]
pub enum ShardRequest {
    Partition {
        key: PartitionKey,
        request: PartitionRequest,
    },
    Group {
        group_id: String,
        request: GroupRequest,
    },
    ListGroups,
    Controller(ControllerRequest),
    /// Take the current metadata image: close and delete the partitions of deleted topics, apply
    /// changed topic configs, forget the committed offsets of deleted topics. Idempotent.
    ApplyMetadata,
    /// Report counters, partitions and groups (the admin listener's scrape).
    Stats,
}

/// The answer to a `ShardRequest`, one variant per request.
#[derive(Debug)]
pub enum ShardResponse {
    Partition(Result<PartitionResponse, PartitionError>),
    Group(GroupResponse),
    Groups(Vec<GroupListing>),
    Controller(ControllerResponse),
    MetadataApplied,
    Stats(Box<ShardStats>),
    /// The shard has not finished starting (its group coordinator is still loading).
    NotReady,
}

/// The kinds of cross-shard requests, counted per shard (sent and served).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Partition,
    Group,
    ListGroups,
    Controller,
    ApplyMetadata,
    Stats,
}

impl RequestKind {
    pub const ALL: [RequestKind; 6] = [
        RequestKind::Partition,
        RequestKind::Group,
        RequestKind::ListGroups,
        RequestKind::Controller,
        RequestKind::ApplyMetadata,
        RequestKind::Stats,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RequestKind::Partition => "partition",
            RequestKind::Group => "group",
            RequestKind::ListGroups => "list_groups",
            RequestKind::Controller => "controller",
            RequestKind::ApplyMetadata => "apply_metadata",
            RequestKind::Stats => "stats",
        }
    }
}

impl ShardRequest {
    pub fn kind(&self) -> RequestKind {
        match self {
            ShardRequest::Partition { .. } => RequestKind::Partition,
            ShardRequest::Group { .. } => RequestKind::Group,
            ShardRequest::ListGroups => RequestKind::ListGroups,
            ShardRequest::Controller(_) => RequestKind::Controller,
            ShardRequest::ApplyMetadata => RequestKind::ApplyMetadata,
            ShardRequest::Stats => RequestKind::Stats,
        }
    }
}

/// What travels between two shards.
pub enum Envelope {
    Request { id: u64, request: ShardRequest },
    Response { id: u64, response: ShardResponse },
}

/// Requests one shard may have in flight to another; a sender past it waits (in order) for an
/// answer to free a slot. Long polls count, so it is generous.
const CALLS_IN_FLIGHT_MAX: u64 = 8192;

/// How long a disconnecting shard waits for the responses it has queued to leave.
const DISCONNECT_FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// Requests and responses queued in one shared channel before it applies backpressure.
const SHARD_CHANNEL_CAPACITY: usize = 1024;

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
    /// The controller quorum as shard 0's controller task last published it (DescribeQuorum).
    pub cluster_view: Arc<ClusterView>,
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

/// Cross-shard requests of each kind this shard sent and served.
#[derive(Default)]
pub struct RequestCounts {
    sent: [Cell<u64>; RequestKind::ALL.len()],
    served: [Cell<u64>; RequestKind::ALL.len()],
}

impl RequestCounts {
    fn count(cells: &[Cell<u64>], kind: RequestKind) {
        let cell = &cells[kind as usize];
        cell.set(cell.get() + 1);
    }

    /// (kind, sent, served) for every kind.
    pub fn snapshot(&self) -> Vec<(RequestKind, u64, u64)> {
        RequestKind::ALL
            .iter()
            .map(|&k| {
                (
                    k,
                    self.sent[k as usize].get(),
                    self.served[k as usize].get(),
                )
            })
            .collect()
    }
}

impl std::fmt::Display for RequestCounts {
    /// `kind sent/served` for each kind, as a log line shows them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (kind, sent, served) in self.snapshot() {
            write!(f, "{} {sent}/{served} ", kind.name())?;
        }
        Ok(())
    }
}

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
    /// Per target shard, an in-order local queue that a pump task moves into the shared channel,
    /// and the slots that bound what is in flight there.
    outboxes: Vec<Option<Outbox>>,
    /// Sent requests waiting for their response, by id, with the shard that serves them.
    pending: RefCell<HashMap<u64, (usize, oneshot::Sender<ShardResponse>)>>,
    next_request_id: Cell<u64>,
    pub request_counts: RequestCounts,
    /// Per shard, whether it can answer no more (its channel to or from us closed): requests for
    /// it fail at once with `ShardGone`.
    gone: Vec<Cell<bool>>,
    /// The tasks moving each outbox into its channel; awaited by `disconnect`.
    pumps: RefCell<Vec<glommio::Task<()>>>,
    /// The tasks receiving from each other shard; dropped (cancelled) by `disconnect`.
    receivers: RefCell<Vec<glommio::Task<()>>>,
    /// The shard's commit log, with `commit_log_enabled`.
    commit_log: Option<Rc<ShardCommitLog>>,
}

/// The sending side towards one other shard: queuing never waits once a slot is held, so requests
/// leave in the order their slots were granted (glommio's semaphore is first come, first served).
struct Outbox {
    queue: mpsc::UnboundedSender<Envelope>,
    slots: Rc<Semaphore>,
}

/// A partition being opened or open. The first user opens it; users that come meanwhile wait in
/// line and go in arrival order, each waking the next (glommio's semaphore lets a newcomer take a
/// released permit before the woken waiter runs, which reordered one connection's appends).
#[derive(Default)]
pub struct PartitionSlot {
    partition: RefCell<Option<Rc<Partition>>>,
    opening: Cell<bool>,
    /// Users waiting for their turn, in arrival order.
    line: RefCell<VecDeque<oneshot::Sender<Result<(), PartitionError>>>>,
    /// Users in line or woken but not yet running: while any, newcomers queue too.
    waiting: Cell<usize>,
    /// Set while the partition's log is offline after a failure, until a reopen succeeds.
    offline: RefCell<Option<OfflineLog>>,
}

impl PartitionSlot {
    /// Gives the turn to the next user in line that is still there.
    fn wake_next(&self) {
        loop {
            let next = self.line.borrow_mut().pop_front();
            match next {
                Some(user) => {
                    if user.send(Ok(())).is_ok() {
                        return;
                    }
                }
                None => return,
            }
        }
    }

    /// The open failed: every user in line gets the error.
    fn fail_line(&self, e: &PartitionError) {
        let line = std::mem::take(&mut *self.line.borrow_mut());
        for user in line {
            let _ = user.send(Err(e.for_waiter()));
        }
    }
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
                    outboxes.push(Some(Outbox {
                        queue: tx,
                        slots: Rc::new(Semaphore::new(CALLS_IN_FLIGHT_MAX)),
                    }));
                    pumps.push((target, sender, rx));
                }
                None => outboxes.push(None),
            }
        }
        let commit_log = shared.config.commit_log_enabled.then(|| {
            let log = ShardCommitLog::new(&shared.config, id, shared.shard_count());
            // Read back before any partition opens (they wait for it); not cancellable, so a
            // shutdown during start-up cannot leave a partition opened without its records.
            let loading = log.clone();
            glommio::spawn_local(async move { loading.load().await }).detach();
            log
        });
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
            next_request_id: Cell::new(0),
            request_counts: RequestCounts::default(),
            gone: (0..links.from.len()).map(|_| Cell::new(false)).collect(),
            pumps: RefCell::new(Vec::new()),
            receivers: RefCell::new(Vec::new()),
            commit_log,
        });
        shard.clone().connect(pumps, links.from).await;
        shard
    }

    /// Connects every channel end (each must connect on its own executor, and a connect waits for
    /// its peer, so all at once), then starts the pumps and the receivers.
    async fn connect(
        self: Rc<Self>,
        pumps: Vec<(
            usize,
            SharedSender<Envelope>,
            mpsc::UnboundedReceiver<Envelope>,
        )>,
        from: Vec<Option<SharedReceiver<Envelope>>>,
    ) {
        let senders = futures::future::join_all(
            pumps
                .into_iter()
                .map(|(target, sender, rx)| async move { (target, sender.connect().await, rx) }),
        );
        let receivers = futures::future::join_all(
            from.into_iter()
                .enumerate()
                .filter_map(|(source, r)| r.map(|r| async move { (source, r.connect().await) })),
        );
        let (senders, receivers) = futures::future::join(senders, receivers).await;
        for (target, sender, mut queue) in senders {
            let this = self.clone();
            let pump = glommio::spawn_local(async move {
                while let Some(envelope) = queue.next().await {
                    if sender.send(envelope).await.is_err() {
                        tracing::debug!(target, "shard channel closed");
                        break;
                    }
                }
                // Requests queued to `target` will get no response: fail them rather than hang.
                this.fail_pending_to(target);
            });
            self.pumps.borrow_mut().push(pump);
        }
        let receiving = receivers
            .into_iter()
            .map(|(source, receiver)| {
                glommio::spawn_local(self.clone().receive_from(source, receiver))
            })
            .collect();
        *self.receivers.borrow_mut() = receiving;
    }

    /// Serves the requests shard `source` sends and completes the responses it returns.
    async fn receive_from(
        self: Rc<Self>,
        source: usize,
        receiver: shared_channel::ConnectedReceiver<Envelope>,
    ) {
        while let Some(envelope) = receiver.recv().await {
            match envelope {
                Envelope::Request { id, request } => {
                    // Spawned in arrival order: requests from one sender are first polled in the
                    // order sent, which keeps one connection's appends to a partition in order.
                    let shard = self.clone();
                    glommio::spawn_local(async move {
                        let response = shard.clone().serve(request).await;
                        shard.send_envelope(source, Envelope::Response { id, response });
                    })
                    .detach();
                }
                Envelope::Response { id, response } => {
                    let waiter = self.pending.borrow_mut().remove(&id);
                    if let Some((_, waiter)) = waiter {
                        let _ = waiter.send(response);
                    }
                }
            }
        }
        // `source` has exited: no response of its can come any more.
        self.fail_pending_to(source);
    }

    /// Marks `target` gone and drops the response slots of requests sent to it: their callers get
    /// `ShardGone`, as does every request sent to it from now on.
    fn fail_pending_to(&self, target: usize) {
        if let Some(gone) = self.gone.get(target) {
            gone.set(true);
        }
        let failed: Vec<_> = {
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
        drop(failed);
    }

    /// Cuts this shard off before its executor ends (shutdown, or a failed start): the responses
    /// already queued still leave, then its channels close, so a request another shard sent or
    /// sends it fails there with `ShardGone` instead of waiting for a shard that is gone. (An
    /// executor that just ends leaves its channel ends behind, parked in tasks never dropped.)
    pub async fn disconnect(&self) {
        for outbox in self.outboxes.iter().flatten() {
            outbox.queue.close_channel();
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
            .is_some_and(|o| o.queue.unbounded_send(envelope).is_ok())
    }

    /// Sends `request` to shard `target` and returns its response. Runs inline when `target` is
    /// this shard, so callers see the same ordering either way: the request is started (local) or
    /// queued (remote, once a slot is free) before this future first yields.
    pub async fn call(
        self: &Rc<Self>,
        target: usize,
        request: ShardRequest,
    ) -> Result<ShardResponse, ShardGone> {
        RequestCounts::count(&self.request_counts.sent, request.kind());
        if target == self.id {
            return Ok(self.clone().serve(request).await);
        }
        let outbox = self
            .outboxes
            .get(target)
            .and_then(Option::as_ref)
            .filter(|_| !self.gone.get(target).is_some_and(Cell::get))
            .ok_or(ShardGone(target))?;
        let _slot = outbox
            .slots
            .acquire_static_permit(1)
            .await
            .map_err(|_| ShardGone(target))?;
        let id = self.next_request_id.get();
        self.next_request_id.set(id + 1);
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(id, (target, tx));
        if !self.send_envelope(target, Envelope::Request { id, request }) {
            self.pending.borrow_mut().remove(&id);
            return Err(ShardGone(target));
        }
        rx.await.map_err(|_| ShardGone(target))
    }

    /// Serves one request on this shard.
    pub(crate) async fn serve(self: Rc<Self>, request: ShardRequest) -> ShardResponse {
        RequestCounts::count(&self.request_counts.served, request.kind());
        match request {
            ShardRequest::Partition { key, request } => {
                ShardResponse::Partition(match self.partition(&key).await {
                    Ok(p) => {
                        let served = p.clone().serve(request).await;
                        if p.log_failure().is_some() {
                            self.take_offline_soon(key);
                        }
                        served
                    }
                    Err(e) => Err(e),
                })
            }
            ShardRequest::Group { group_id, request } => match self.coordinator.get() {
                Some(c) => ShardResponse::Group(c.clone().serve(&group_id, request).await),
                None => ShardResponse::NotReady,
            },
            ShardRequest::ListGroups => match self.coordinator.get() {
                Some(c) => ShardResponse::Groups(c.list()),
                None => ShardResponse::NotReady,
            },
            ShardRequest::Controller(request) => {
                ShardResponse::Controller(match &self.controller {
                    Some(c) => c.clone().serve(&self, request).await,
                    None => ControllerResponse::refused(
                        &request,
                        ControllerError::Unavailable {
                            reason: format!("shard {} runs no controller", self.id),
                        },
                    ),
                })
            }
            ShardRequest::ApplyMetadata => {
                self.apply_metadata().await;
                ShardResponse::MetadataApplied
            }
            ShardRequest::Stats => ShardResponse::Stats(Box::new(stats::collect(&self))),
        }
    }

    /// Has every shard (this one included) apply the current metadata image.
    pub async fn apply_metadata_everywhere(self: &Rc<Self>) {
        let all = (0..self.shared.shard_count()).map(|s| self.call(s, ShardRequest::ApplyMetadata));
        for result in futures::future::join_all(all).await {
            if let Err(gone) = result {
                tracing::warn!(error = %gone, "a shard did not apply the metadata change");
            }
        }
    }

    /// Takes the current image: the partitions of deleted topics are closed and their files
    /// removed, the others take their topic's configs and leader epoch, and the group coordinator
    /// forgets the offsets of deleted topics.
    pub async fn apply_metadata(self: &Rc<Self>) {
        let image = self.image();
        for (key, partition) in self.open_partitions_by_key() {
            match image.topic_by_id(&riffle_protocol::Uuid(key.topic_id)) {
                Some(topic) => partition.apply_metadata(topic, self.config()),
                None => self.delete_partition(&key, partition).await,
            }
        }
        self.delete_offline_partitions_not_in(&image).await;
        if let Some(coordinator) = self.coordinator.get() {
            coordinator.forget_topics_not_in(&image).await;
        }
    }

    /// Forgets the offline partitions (closed after a log failure) of deleted topics and removes
    /// their files.
    async fn delete_offline_partitions_not_in(&self, image: &MetadataImage) {
        let deleted: Vec<(PartitionKey, OfflineLog)> = {
            let mut partitions = self.partitions.borrow_mut();
            let keys: Vec<PartitionKey> = partitions
                .iter()
                .filter(|(k, s)| {
                    !s.opening.get()
                        && s.offline.borrow().is_some()
                        && image
                            .topic_by_id(&riffle_protocol::Uuid(k.topic_id))
                            .is_none()
                })
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter()
                .filter_map(|k| {
                    let slot = partitions.remove(&k)?;
                    let offline = slot.offline.take()?;
                    Some((k, offline))
                })
                .collect()
        };
        for (key, offline) in deleted {
            if let Err(e) = remove_partition_dir(offline.dir.clone()).await {
                tracing::error!(dir = %offline.dir.display(), error = %e, "cannot delete partition files");
            }
            tracing::info!(shard = self.id, partition = key.partition, dir = %offline.dir.display(), "deleted offline partition");
        }
    }

    async fn delete_partition(&self, key: &PartitionKey, partition: Rc<Partition>) {
        self.partitions.borrow_mut().remove(key);
        partition.close().await;
        if let Err(e) = remove_partition_dir(partition.dir.clone()).await {
            // Start-up removes it (and opening a new topic of the same name never reads it).
            tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "cannot delete partition files");
        }
        tracing::info!(shard = self.id, topic = %partition.topic, partition = partition.index, "deleted partition");
    }

    /// Opens this shard's consumer-group slots (start-up), dropping the offsets of topics that a
    /// crash deleted before their offsets were.
    pub async fn open_group_coordinator(&self) -> anyhow::Result<Rc<GroupCoordinator>> {
        let coordinator =
            GroupCoordinator::open(self.id, self.shared.shard_count(), &self.shared.config).await?;
        coordinator.forget_topics_not_in(&self.image()).await;
        let _ = self.coordinator.set(coordinator.clone());
        Ok(coordinator)
    }

    /// The group coordinator of this shard, once it has loaded.
    pub fn group_coordinator_if_open(&self) -> Option<Rc<GroupCoordinator>> {
        self.coordinator.get().cloned()
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

    fn partition_error(&self, key: &PartitionKey, kind: PartitionErrorKind) -> PartitionError {
        let id = riffle_protocol::Uuid(key.topic_id);
        let topic = self
            .image()
            .topic_by_id(&id)
            .map_or_else(|| format!("(topic id {id})"), |t| t.name.clone());
        PartitionError::new(&topic, key.partition, kind)
    }

    /// The open partition `key` if this shard owns it per the current image, opening it on first
    /// use. Callers get it in the order they asked, also while it opens.
    pub async fn partition(
        self: &Rc<Self>,
        key: &PartitionKey,
    ) -> Result<Rc<Partition>, PartitionError> {
        let slot = self
            .partitions
            .borrow_mut()
            .entry(key.clone())
            .or_default()
            .clone();
        let open = slot.partition.borrow().clone();
        match open {
            // Users already woken go first (their requests meet the failed log's error), so none
            // finds the slot emptied under it.
            Some(p) if slot.waiting.get() == 0 && p.log_failure().is_some() => {
                return Err(self.take_offline(key, &slot, p).await)
            }
            Some(p) if slot.waiting.get() == 0 => return Ok(p),
            None if !slot.opening.get() => return self.open_slot(key, &slot).await,
            _ => {}
        }
        let (turn, my_turn) = oneshot::channel();
        slot.line.borrow_mut().push_back(turn);
        slot.waiting.set(slot.waiting.get() + 1);
        let turn = my_turn.await;
        slot.waiting.set(slot.waiting.get() - 1);
        match turn {
            Ok(Ok(())) => {
                let p = slot.partition.borrow().clone();
                slot.wake_next();
                p.ok_or_else(|| {
                    self.partition_error(key, PartitionErrorKind::UnknownTopicOrPartition)
                })
            }
            Ok(Err(e)) => Err(e),
            Err(_) => {
                Err(self
                    .partition_error(key, PartitionErrorKind::ShardUnavailable { shard: self.id }))
            }
        }
    }

    /// Opens the partition of `slot` for its first user, then gives the turn to the next in line.
    async fn open_slot(
        self: &Rc<Self>,
        key: &PartitionKey,
        slot: &PartitionSlot,
    ) -> Result<Rc<Partition>, PartitionError> {
        let cut_at = slot.offline.borrow().as_ref().map(|o| o.durable_end);
        if let Some(refused) = self.refuse_while_backing_off(key, slot) {
            return Err(refused);
        }
        slot.opening.set(true);
        let opened = self.open_partition(key, cut_at).await;
        slot.opening.set(false);
        match &opened {
            Ok(p) => {
                if slot.offline.take().is_some() {
                    tracing::info!(shard = self.id, topic = %p.topic, partition = p.index, log_end_offset = p.log_end_offset(), "partition reopened after its log failed");
                }
                *slot.partition.borrow_mut() = Some(p.clone());
                slot.wake_next();
            }
            Err(e) => {
                slot.fail_line(e);
                let backoff = self.log_reopen_backoff();
                match slot.offline.borrow_mut().as_mut() {
                    Some(offline) => {
                        tracing::error!(shard = self.id, error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot reopen the partition whose log failed");
                        offline.reopen_failed(e.to_string(), Instant::now(), backoff);
                    }
                    None => {
                        self.partitions.borrow_mut().remove(key);
                    }
                }
            }
        }
        opened
    }

    fn log_reopen_backoff(&self) -> Duration {
        Duration::from_millis(self.config().log_reopen_backoff_ms)
    }

    /// The error for a request to a partition whose log is offline and may not reopen yet.
    fn refuse_while_backing_off(
        &self,
        key: &PartitionKey,
        slot: &PartitionSlot,
    ) -> Option<PartitionError> {
        let now = Instant::now();
        let offline = slot.offline.borrow();
        let offline = offline.as_ref().filter(|o| !o.may_reopen(now))?;
        let kind = PartitionErrorKind::LogOffline {
            reason: offline.reason.clone(),
            retry_in_ms: offline.retry_in(now).as_millis() as u64,
        };
        Some(self.partition_error(key, kind))
    }

    /// The log of `failed` went offline: the partition is closed and refused until it is reopened
    /// from what is durable (`open_slot`) after the back-off, by a timer or by a request that
    /// comes first. Users already in line get the error too. Returns the error for the caller.
    async fn take_offline(
        self: &Rc<Self>,
        key: &PartitionKey,
        slot: &PartitionSlot,
        failed: Rc<Partition>,
    ) -> PartitionError {
        let reason = failed
            .log_failure()
            .map_or_else(String::new, |e| e.to_string());
        let backoff = self.log_reopen_backoff();
        tracing::error!(shard = self.id, topic = %failed.topic, partition = failed.index, high_watermark = failed.high_watermark(), error = %reason, retry_in_ms = backoff.as_millis() as u64, "partition log offline; it reopens from what is durable");
        slot.opening.set(true);
        *slot.partition.borrow_mut() = None;
        *slot.offline.borrow_mut() = Some(OfflineLog::failed(
            failed.high_watermark(),
            failed.dir.clone(),
            reason.clone(),
            Instant::now(),
            backoff,
        ));
        failed.close_after_failure().await;
        slot.opening.set(false);
        let kind = PartitionErrorKind::LogOffline {
            reason,
            retry_in_ms: backoff.as_millis() as u64,
        };
        let error = PartitionError::new(&failed.topic, failed.index, kind);
        slot.fail_line(&error);
        self.reopen_when_due(key.clone());
        error
    }

    /// Reopens the offline partition `key` once its back-off has passed, without waiting for a
    /// request (a reopen that fails backs off and is tried again), so that a partition comes
    /// back by itself once the disk works again. Stops once the partition is open again (a
    /// request may reopen it first), deleted, or the broker shuts down.
    fn reopen_when_due(self: &Rc<Self>, key: PartitionKey) {
        let shard = Rc::downgrade(self);
        glommio::spawn_local(async move {
            loop {
                let wait = {
                    let Some(shard) = shard.upgrade() else { return };
                    let slot = shard.partitions.borrow().get(&key).cloned();
                    let Some(slot) = slot else { return };
                    let retry_in = slot
                        .offline
                        .borrow()
                        .as_ref()
                        .map(|o| o.retry_in(Instant::now()));
                    let Some(retry_in) = retry_in else { return };
                    retry_in
                };
                // Not under 10 ms: while a reopen runs, the next look comes once it is done.
                glommio::timer::sleep(wait.max(Duration::from_millis(10))).await;
                let Some(shard) = shard.upgrade() else { return };
                if shard.shared.is_shutting_down() {
                    return;
                }
                let due = shard.partitions.borrow().get(&key).is_some_and(|slot| {
                    !slot.opening.get()
                        && slot
                            .offline
                            .borrow()
                            .as_ref()
                            .is_some_and(|o| o.may_reopen(Instant::now()))
                });
                if due {
                    // Success or failure, `open_slot` records the outcome in the slot.
                    let _ = shard.partition(&key).await;
                }
            }
        })
        .detach();
    }

    /// Opens partition `key`; after a log failure (`cut_at`: the high watermark then) from what
    /// was durable.
    async fn open_partition(
        self: &Rc<Self>,
        key: &PartitionKey,
        cut_at: Option<i64>,
    ) -> Result<Rc<Partition>, PartitionError> {
        let image = self.image();
        let unknown = || self.partition_error(key, PartitionErrorKind::UnknownTopicOrPartition);
        let topic = image
            .topic_by_id(&riffle_protocol::Uuid(key.topic_id))
            .ok_or_else(unknown)?;
        let meta = topic
            .partitions
            .get(key.partition as usize)
            .ok_or_else(unknown)?;
        if meta.shard as usize != self.id {
            let kind = PartitionErrorKind::NotOwner {
                owner: meta.shard as usize,
                asked: self.id,
            };
            return Err(self.partition_error(key, kind));
        }
        let commit_log = self.commit_log.clone();
        let partition = match cut_at {
            Some(durable_end) => {
                Partition::reopen(self.config(), topic, key.partition, durable_end, commit_log)
                    .await?
            }
            None => Partition::open(self.config(), topic, key.partition, commit_log).await?,
        };
        tracing::info!(
            shard = self.id,
            topic = %topic.name,
            partition = key.partition,
            log_end_offset = partition.log_end_offset(),
            "shard {} opened partition {}-{}",
            self.id,
            topic.name,
            key.partition
        );
        Ok(partition)
    }

    /// Start-up with a commit log: the partitions it holds records of open first (applying them),
    /// then the log restarts on its files, recycling them. A partition that cannot open keeps the
    /// log off for this run (acks=all then flushes each partition), so no record is lost.
    async fn replay_commit_log(self: &Rc<Self>, commit_log: &Rc<ShardCommitLog>) {
        commit_log.loaded().await;
        let image = self.image();
        for key in commit_log.partitions_to_replay() {
            let topic = image.topic_by_id(&riffle_protocol::Uuid(key.topic_id));
            if topic.is_none_or(|t| t.partitions.len() <= key.partition as usize) {
                // The topic was deleted: its records go with it.
                commit_log.forget(&key);
                continue;
            }
            if self.shared.is_shutting_down() {
                return;
            }
            if let Err(e) = self.partition(&key).await {
                tracing::error!(shard = self.id, error = %e, "cannot apply the commit log to a partition at start-up");
            }
        }
        let shard = Rc::downgrade(self);
        let checkpoint: riffle_storage::commit_log::Checkpoint = Rc::new(move |offsets| {
            let shard = shard.clone();
            Box::pin(async move {
                match shard.upgrade() {
                    Some(shard) => shard.checkpoint(offsets).await,
                    None => Err(riffle_storage::StorageError::Closed),
                }
            })
        });
        commit_log.start(checkpoint).await;
    }

    /// Makes the segments of the given partitions durable, so the commit-log file holding their
    /// records can be reused. A partition whose log failed is waited for while it reopens from
    /// what is durable (the reopen applies its commit-log records again), up to
    /// `checkpoint_wait`; one still offline then fails the checkpoint, and the commit log stops
    /// with its records kept for that partition's reopen.
    async fn checkpoint(
        self: &Rc<Self>,
        offsets: Vec<(riffle_storage::commit_log::PartitionId, i64)>,
    ) -> Result<(), riffle_storage::StorageError> {
        let deadline = Instant::now() + self.checkpoint_wait();
        let keys: Vec<PartitionKey> = offsets
            .into_iter()
            .map(|(id, _)| PartitionKey {
                topic_id: id.topic_id,
                partition: id.index as i32,
            })
            .collect();
        // Side by side: the device flushes concurrent fdatasyncs together.
        futures::future::try_join_all(keys.iter().map(|k| self.checkpoint_partition(k, deadline)))
            .await?;
        Ok(())
    }

    /// How long a commit-log checkpoint waits for an offline partition to come back: three
    /// reopen back-offs (`log_reopen_backoff_ms`), so a reopen that fails once still counts.
    fn checkpoint_wait(&self) -> Duration {
        3 * self.log_reopen_backoff()
    }

    /// One partition's part of a checkpoint: its segments made durable, once it is open with a
    /// working log; `Ok` for a partition whose topic is gone (its records go with it).
    async fn checkpoint_partition(
        self: &Rc<Self>,
        key: &PartitionKey,
        deadline: Instant,
    ) -> Result<(), riffle_storage::StorageError> {
        let mut failure = None;
        loop {
            let image = self.image();
            let topic = image.topic_by_id(&riffle_protocol::Uuid(key.topic_id));
            if topic.is_none_or(|t| t.partitions.len() <= key.partition as usize) {
                return Ok(());
            }
            let open = self
                .partitions
                .borrow()
                .get(key)
                .and_then(|slot| slot.partition.borrow().clone());
            if let Some(partition) = open {
                if partition.log_failure().is_none() {
                    match partition.checkpoint().await {
                        Ok(()) => return Ok(()),
                        Err(e) => failure = Some(e),
                    }
                }
                if partition.log_failure().is_some() {
                    // Taken offline now; its timer reopens it after the back-off.
                    self.take_offline_soon(key.clone());
                }
            }
            if Instant::now() >= deadline || self.shared.is_shutting_down() {
                let error = failure.unwrap_or(riffle_storage::StorageError::Closed);
                tracing::error!(shard = self.id, partition = key.partition, wait_ms = self.checkpoint_wait().as_millis() as u64, error = %error, "a partition with records in the commit log did not come back; the commit log stops and keeps its records for the partition's reopen");
                return Err(error);
            }
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Writes the commit log's last round and stops it (shutdown, after the partitions closed).
    pub async fn close_commit_log(&self) {
        if let Some(commit_log) = &self.commit_log {
            commit_log.close().await;
        }
    }

    fn open_partitions_by_key(&self) -> Vec<(PartitionKey, Rc<Partition>)> {
        self.partitions
            .borrow()
            .iter()
            .filter_map(|(k, s)| s.partition.borrow().clone().map(|p| (k.clone(), p)))
            .collect()
    }

    /// Takes the partition `key`, whose log just failed, offline without waiting for its next
    /// request, so that its reopen timer starts now.
    fn take_offline_soon(self: &Rc<Self>, key: PartitionKey) {
        let shard = self.clone();
        glommio::spawn_local(async move {
            // The failed log is found there and taken offline; the error is for no one.
            let _ = shard.partition(&key).await;
        })
        .detach();
    }

    /// Takes offline the open partitions whose log failed with no request there to notice (a
    /// background flush failed), so that they reopen by themselves after the back-off.
    pub async fn take_failed_logs_offline(self: &Rc<Self>) {
        for (key, partition) in self.open_partitions_by_key() {
            if partition.log_failure().is_some() {
                // The failed log is found there and taken offline; the error is for no one.
                let _ = self.partition(&key).await;
            }
        }
    }

    /// Open partitions of this shard.
    pub fn open_partitions(&self) -> Vec<Rc<Partition>> {
        self.open_partitions_by_key()
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    /// Opens every partition of this node the image places on this shard, one after the other (recovery,
    /// in the background once the shard listens). One that fails is logged and left to open on
    /// its next use; shutdown stops the walk.
    pub async fn open_owned_partitions(self: Rc<Self>) {
        if let Some(commit_log) = self.commit_log.clone() {
            self.replay_commit_log(&commit_log).await;
        }
        let image = self.image();
        // With a quorum, partitions of other brokers have no log here.
        let node_id = self.config().node_id;
        let clustered = self.config().controller_quorum.is_some();
        let (mut opened, mut failed) = (0usize, 0usize);
        for topic in image.topics.values() {
            for (index, meta) in topic.partitions.iter().enumerate() {
                if meta.shard as usize != self.id
                    || (clustered && !meta.replicas.contains(&node_id))
                {
                    continue;
                }
                if self.shared.is_shutting_down() {
                    return;
                }
                let key = PartitionKey {
                    topic_id: topic.id,
                    partition: index as i32,
                };
                match self.partition(&key).await {
                    Ok(_) => opened += 1,
                    Err(e) => {
                        failed += 1;
                        tracing::error!(shard = self.id, error = %e, "cannot open partition at start-up; it is retried on its next use");
                    }
                }
            }
        }
        tracing::info!(
            shard = self.id,
            opened,
            failed,
            "start-up opened the shard's partitions"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicBool;

    use futures::FutureExt;
    use glommio::{LocalExecutorBuilder, Placement};

    use super::*;
    use crate::metadata::image::{PartitionMeta, TopicMeta};

    fn executor(name: &str) -> LocalExecutorBuilder {
        LocalExecutorBuilder::new(Placement::Unbound)
            .name(name)
            .io_memory(512 * 1024)
    }

    /// One topic whose only partition lives on shard 1.
    fn image_with_a_partition_on_shard_1() -> MetadataImage {
        let mut image = MetadataImage::default();
        let topic = TopicMeta {
            name: "t".to_string(),
            id: [5; 16],
            partitions: vec![PartitionMeta {
                shard: 1,
                leader: 0,
                leader_epoch: 0,
                replicas: vec![0],
                isr: vec![0],
            }],
            configs: BTreeMap::new(),
        };
        image.topics.insert("t".to_string(), Arc::new(topic));
        image
    }

    fn long_poll() -> ShardRequest {
        ShardRequest::Partition {
            key: PartitionKey {
                topic_id: [5; 16],
                partition: 0,
            },
            request: PartitionRequest::WaitForData {
                offset: 0,
                timeout: Duration::from_secs(60),
            },
        }
    }

    #[test]
    fn requests_to_a_shard_that_disconnects_resolve_with_shard_gone() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Arc::new(Shared {
            config: BrokerConfig {
                data_dir: dir.path().to_path_buf(),
                ..BrokerConfig::default()
            },
            image: ArcSwap::from_pointee(image_with_a_partition_on_shard_1()),
            shards: 2,
            shutting_down: AtomicBool::new(false),
            cluster_view: Default::default(),
        });
        let shutdown: Shutdown = futures::future::pending::<()>().boxed().shared();
        let mut links = mesh(2).into_iter();
        let (links0, links1) = (links.next().unwrap(), links.next().unwrap());
        let (shared1, shutdown1) = (shared.clone(), shutdown.clone());
        let shard1 = executor("test-shard-1")
            .spawn(move || async move {
                let shard = Shard::start(1, shared1, None, shutdown1, links1).await;
                // Disconnects while shard 0's long poll is being served here.
                while shard.request_counts.snapshot()[0].2 == 0 {
                    glommio::timer::sleep(Duration::from_millis(5)).await;
                }
                glommio::timer::sleep(Duration::from_millis(50)).await;
                shard.disconnect().await;
                for p in shard.open_partitions() {
                    p.close().await;
                }
            })
            .unwrap();
        let shard0 = executor("test-shard-0")
            .spawn(move || async move {
                let shard = Shard::start(0, shared, None, shutdown, links0).await;
                let in_flight = shard.call(1, long_poll());
                let limit = glommio::timer::sleep(Duration::from_secs(10));
                let in_flight =
                    match futures::future::select(Box::pin(in_flight), Box::pin(limit)).await {
                        futures::future::Either::Left((r, _)) => r,
                        futures::future::Either::Right(_) => panic!("the in-flight request hangs"),
                    };
                let after = shard.call(1, long_poll()).await;
                (in_flight.err().map(|g| g.0), after.err().map(|g| g.0))
            })
            .unwrap();
        let (in_flight, after) = shard0.join().unwrap();
        shard1.join().unwrap();
        assert_eq!(
            in_flight,
            Some(1),
            "the in-flight request resolves with ShardGone(1)"
        );
        assert_eq!(
            after,
            Some(1),
            "a request sent afterwards resolves with ShardGone(1)"
        );
    }
}
