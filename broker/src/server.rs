//! Start-up and shutdown: one pinned glommio executor per shard, each listening on the Kafka port
//! with SO_REUSEPORT and admitting connections under `max_connections`; SIGINT/SIGTERM stop
//! accepting, let in-flight requests finish (for at most `shutdown_timeout_ms`), then flush and
//! close every log.

use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use arc_swap::ArcSwap;
use futures::channel::oneshot;
use futures::future::{select, Either, FutureExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::Gate;
use glommio::{GlommioError, LocalExecutorBuilder, Placement, PoolPlacement};

use crate::admin::{self, AdminInbox};
use crate::cluster::{self, ClusterView};
use crate::config::BrokerConfig;
use crate::connection::{self, Accepted, ConnectionLimits, ForceClose};
use crate::groups::GroupCoordinator;
use crate::metadata::{store, Controller};
use crate::shard::{mesh, Links, Shard, Shared};
use crate::topic_config::HOUSEKEEPING_INTERVAL;
use crate::Shutdown;

/// Descriptors kept for logs, indexes and the runtime: `max_connections` above the open-files
/// limit minus this is warned about at start, since connections could then starve the logs.
const DESCRIPTORS_RESERVED: u64 = 1024;
/// First pause of an accept loop after a failed accept (EMFILE, ENFILE, ...); it doubles with
/// each failure in a row up to ACCEPT_BACKOFF_MAX, so the loop neither spins nor gives up.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Repeated accept failures and refused connections are logged at most once per interval.
const REPEATED_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// How often a shard that has drained its connections checks whether every shard has.
const DRAIN_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Holds an exclusive lock on the data dir for the life of the process: two brokers on one data
/// dir would corrupt it, and SO_REUSEPORT would let a second one share the port silently.
fn lock_data_dir(dir: &Path) -> anyhow::Result<File> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating data dir {}", dir.display()))?;
    let path = dir.join(".lock");
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        bail!(
            "data dir {} is in use by another riffle process",
            dir.display()
        );
    }
    Ok(file)
}

/// The CPUs this process may run on (all of them, counted, if the kernel will not say).
pub(crate) fn allowed_cpus() -> Vec<usize> {
    match core_affinity::get_core_ids() {
        Some(cores) if !cores.is_empty() => cores.into_iter().map(|core| core.id).collect(),
        _ => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
    }
}

/// Checks that no one listens on the address (glommio binds with SO_REUSEPORT, which would share
/// a port held by another process silently) and resolves port 0 to one free port for all shards.
fn reserve_listen_address(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    use socket2::{Domain, Socket, Type};
    if addr.port() != 0
        && std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    {
        bail!("cannot listen on {addr}: another process is listening there");
    }
    let probe = (|| {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        // Like the shards' sockets, so that connections of a previous run in TIME_WAIT do not
        // block a restart.
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.bind(&addr.into())?;
        socket.local_addr()
    })()
    .with_context(|| format!("cannot listen on {addr}"))?;
    probe
        .as_socket()
        .context("listen address is not an IP address")
}

pub fn run(mut config: BrokerConfig) -> anyhow::Result<()> {
    config.validate()?;
    install_fail_stop();
    let _lock = lock_data_dir(&config.data_dir)?;
    config.listen = reserve_listen_address(config.listen)?;
    // Bound before recovery, so that /v1/health and /v1/ready answer during start-up.
    let admin_listener = admin::bind(config.admin_listen)?;
    let open_files_limit = raise_open_files_limit();
    if open_files_limit < config.max_connections as u64 + DESCRIPTORS_RESERVED {
        tracing::warn!(
            open_files_limit,
            max_connections = config.max_connections,
            "max_connections leaves fewer than {DESCRIPTORS_RESERVED} descriptors of the open \
             files limit to logs; raise the hard limit (LimitNOFILE) or lower max_connections"
        );
    }

    let cpus = allowed_cpus();
    let shards = if config.smp == 0 {
        cpus.len().max(1)
    } else {
        config.smp
    };
    let mut image = store::load(&config.data_dir)?;
    image.fit_to_shards(shards);
    // Finishes any topic deletion a crash interrupted, before a shard can open a partition.
    crate::partition::sweep_orphaned_partition_dirs(&config.data_dir, &image)?;

    check_locked_memory(shards, config.io_memory_bytes);
    let limits = ConnectionLimits::new(config.max_connections, config.max_connections_per_ip);
    let shutdown_timeout = Duration::from_millis(config.shutdown_timeout_ms);
    let cluster_view = Arc::new(ClusterView::default());
    let shared = Arc::new(Shared {
        config,
        image: ArcSwap::from_pointee(image),
        shards,
        shutting_down: Default::default(),
        cluster_view: cluster_view.clone(),
    });

    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let shutdown: Shutdown = stop_rx.map(|_| ()).boxed().shared();
    spawn_signal_thread(shared.clone(), stop_tx, shutdown_timeout)?;

    let ready = Arc::new(AtomicUsize::new(0));
    let recovered = Arc::new(AtomicUsize::new(0));
    let (admin_senders, admin_inboxes) = admin::inboxes(shards);
    if let Some(listener) = admin_listener {
        let line = format!("riffle admin listening on http://{}", listener.addr);
        admin::start(
            listener,
            shared.clone(),
            recovered.clone(),
            admin_senders,
            cluster_view.clone(),
        )?;
        tracing::info!("{line}");
        println!("{line}");
    }
    let mut admin_inboxes = admin_inboxes.into_iter();
    let drained = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::with_capacity(shards);
    for (id, links) in mesh(shards).into_iter().enumerate() {
        let placement = if shards <= cpus.len() {
            Placement::Fixed(cpus[id])
        } else {
            Placement::Unbound
        };
        let start = ShardStart {
            id,
            shared: shared.clone(),
            shutdown: shutdown.clone(),
            ready: ready.clone(),
            recovered: recovered.clone(),
            drained: drained.clone(),
            limits: limits.clone(),
            open_files_limit,
            admin_inbox: admin_inboxes.next(),
            cluster_view: cluster_view.clone(),
        };
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("riffle-shard-{id}"))
            .io_memory(shared.config.io_memory_bytes)
            .preempt_timer(Duration::from_millis(10))
            // Unbound: sync threads sleep in the disk, and should not queue behind the shard.
            .blocking_thread_pool_placement(PoolPlacement::Unbound(
                shared.config.sync_threads_per_shard,
            ))
            .spawn(move || shard_main(start, links))
            .with_context(|| format!("starting shard {id}"))?;
        handles.push(handle);
    }
    join_shards(handles)
}

fn join_shards(
    handles: Vec<glommio::ExecutorJoinHandle<anyhow::Result<()>>>,
) -> anyhow::Result<()> {
    let mut first_error = None;
    for (id, h) in handles.into_iter().enumerate() {
        let result = h
            .join()
            .map_err(|e| anyhow::anyhow!("shard {id} failed: {e}"))
            .and_then(|r| r.with_context(|| format!("shard {id}")));
        if let Err(e) = result {
            tracing::error!("{e:#}");
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => {
            tracing::info!("riffle stopped cleanly");
            Ok(())
        }
    }
}

/// Fail-stop: a panic on any thread (a shard's executor included) logs where and why, then ends
/// the whole process at once. A shard that died quietly would leave every request sent to its
/// partitions hanging, and the others serving half a broker.
fn install_fail_stop() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        tracing::error!(thread = name, "panic: {info}; stopping the broker");
        default_hook(info);
        std::process::abort();
    }));
}

/// io_uring rings per shard that register the shard's `io_memory_bytes` (each charges it to
/// the locked-memory limit).
const RINGS_PER_SHARD: u64 = 3;

/// Raises the soft RLIMIT_MEMLOCK to the hard limit, and says plainly when it is still below what
/// the shards' registered I/O memory needs: glommio then only logs a terse warning per shard and
/// runs without registered buffers (every O_DIRECT write pins its pages).
fn check_locked_memory(shards: usize, io_memory_bytes: usize) {
    let need = shards as u64 * RINGS_PER_SHARD * io_memory_bytes as u64;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return;
    }
    if limit.rlim_cur < need && limit.rlim_max > limit.rlim_cur {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        }
    }
    // SAFETY: geteuid has no preconditions. Root (CAP_IPC_LOCK) is not held to the limit.
    let privileged = unsafe { libc::geteuid() } == 0;
    if limit.rlim_cur != libc::RLIM_INFINITY && limit.rlim_cur < need && !privileged {
        tracing::warn!(
            locked_memory_limit_bytes = limit.rlim_cur,
            needed_bytes = need,
            "the locked-memory limit (ulimit -l) is below {RINGS_PER_SHARD} x io_memory_bytes x \
             {shards} shard(s): I/O runs without registered buffers (more CPU per write); raise \
             memlock or lower io_memory_bytes (README, \"What a server needs\")"
        );
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (every connection and every segment file holds
/// a descriptor) and returns the limit in force.
fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot read the open files limit");
        return 0;
    }
    let mut target = limit.rlim_max;
    if target == libc::RLIM_INFINITY {
        // An unlimited hard limit still cannot exceed fs.nr_open.
        target = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(limit.rlim_cur);
    }
    if limit.rlim_cur >= target {
        return limit.rlim_cur;
    }
    let raised = libc::rlimit {
        rlim_cur: target,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit reads the struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            soft = limit.rlim_cur,
            hard = limit.rlim_max,
            "cannot raise the open files limit to its hard limit"
        );
        return limit.rlim_cur;
    }
    target
}

/// Asks the whole process to shut down, as SIGTERM does (used when one shard cannot start).
pub(crate) fn stop_process() {
    // SAFETY: sending a signal to our own process touches no memory.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGTERM);
    }
}

fn spawn_signal_thread(
    shared: Arc<Shared>,
    stop: oneshot::Sender<()>,
    shutdown_timeout: Duration,
) -> anyhow::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM])?;
    std::thread::Builder::new()
        .name("riffle-signals".into())
        .spawn(move || {
            let mut stop = Some(stop);
            for signal in signals.forever() {
                if let Some(stop) = stop.take() {
                    tracing::info!(
                        signal,
                        "shutting down: no new connections, finishing in-flight requests"
                    );
                    shared.shutting_down.store(true, Ordering::Release);
                    let _ = stop.send(());
                    spawn_shutdown_watchdog(shutdown_timeout);
                } else {
                    tracing::warn!(signal, "second signal: exiting now");
                    std::process::exit(130);
                }
            }
        })?;
    Ok(())
}

/// The last bound on shutdown: connections are cut after `shutdown_timeout_ms`; if closing the
/// logs has not finished by twice that (a disk that does not answer), the process exits anyway
/// and the next start recovers the logs as after a crash.
fn spawn_shutdown_watchdog(shutdown_timeout: Duration) {
    let spawned = std::thread::Builder::new()
        .name("riffle-shutdown-watchdog".into())
        .spawn(move || {
            std::thread::sleep(shutdown_timeout * 2);
            tracing::error!(
                "shutdown did not finish within twice shutdown_timeout_ms ({} ms); exiting \
                 without closing the remaining logs",
                shutdown_timeout.as_millis()
            );
            std::process::exit(1);
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the shutdown watchdog");
    }
}

/// What each shard's main task is given.
struct ShardStart {
    id: usize,
    shared: Arc<Shared>,
    shutdown: Shutdown,
    /// Shards listening; the last one prints the start-up line.
    ready: Arc<AtomicUsize>,
    /// Shards that opened (recovered) every partition they own: `/v1/ready` waits for all.
    recovered: Arc<AtomicUsize>,
    /// Shards done with their connections at shutdown (or ended): logs close once all are.
    drained: Arc<AtomicUsize>,
    limits: Arc<ConnectionLimits>,
    open_files_limit: u64,
    /// Calls from the admin listener (status, metrics) to this shard; taken at start.
    admin_inbox: Option<AdminInbox>,
    /// Where shard 0's controller task publishes the quorum's state (with controller_quorum).
    cluster_view: Arc<ClusterView>,
}

/// Counts its shard as drained once, when marked or, whatever happens, when dropped: a shard
/// that failed to start must not hold the others back at shutdown.
struct DrainedMark(Option<Arc<AtomicUsize>>);

impl DrainedMark {
    fn mark(&mut self) {
        if let Some(drained) = self.0.take() {
            drained.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl Drop for DrainedMark {
    fn drop(&mut self) {
        self.mark();
    }
}

async fn shard_main(mut start: ShardStart, links: Links) -> anyhow::Result<()> {
    let mut drained = DrainedMark(Some(start.drained.clone()));
    riffle_storage::set_shard_tail_cache_bytes(start.shared.config.shard_tail_cache_bytes);
    riffle_storage::set_max_open_segment_files(start.shared.config.max_open_segment_files);
    let controller =
        (start.id == 0).then(|| Rc::new(Controller::new(start.shared.config.data_dir.clone())));
    let shard = Shard::start(
        start.id,
        start.shared.clone(),
        controller,
        start.shutdown.clone(),
        links,
    )
    .await;
    if let Some(inbox) = start.admin_inbox.take() {
        glommio::spawn_local(admin::answer_calls(shard.clone(), inbox)).detach();
    }
    let (coordinator, listener) = match open_shard(&shard, &start.shared.config).await {
        Ok(opened) => opened,
        Err(e) => {
            // One shard failing stops the others, so the process does not limp on half-served.
            stop_process();
            shard.disconnect().await;
            return Err(e);
        }
    };
    glommio::spawn_local(coordinator.clone().run_timers(start.shutdown.clone())).detach();
    if let Err(e) = start_controller(&start, &shard) {
        stop_process();
        shard.disconnect().await;
        return Err(e);
    }
    announce_ready(&start);
    // Dropped (cancelled) before the logs are closed, so no partition opens after that. A
    // controller-only node holds no partitions.
    let broker = start.shared.config.roles.broker;
    let opener = glommio::spawn_local({
        let (shard, recovered) = (shard.clone(), start.recovered.clone());
        async move {
            if broker {
                shard.open_owned_partitions().await;
            }
            recovered.fetch_add(1, Ordering::AcqRel);
        }
    });

    let housekeeping = glommio::spawn_local(housekeeping_loop(shard.clone()));
    // Kept until the end of this function: dropping it would cut writes at once.
    let (cut_writes, cut) = oneshot::channel::<()>();
    let force_close: ForceClose = cut.map(|_| ()).boxed_local().shared();
    let connections = Gate::new();
    match &listener {
        Some(listener) => {
            accept_connections(&shard, listener, &connections, &start, &force_close).await
        }
        // A controller-only node serves no Kafka client (as KRaft's controllers serve none on
        // broker ports): it runs its voter until shutdown.
        None => start.shutdown.clone().await,
    }
    drop(listener);

    let timeout = Duration::from_millis(start.shared.config.shutdown_timeout_ms);
    let deadline = Instant::now() + timeout;
    drain_connections(start.id, &connections, timeout, cut_writes).await;
    drained.mark();
    // Other shards' connections may still need this shard's partitions: keep serving their jobs
    // until every shard has drained, or the deadline.
    while start.drained.load(Ordering::Acquire) < start.shared.shard_count()
        && Instant::now() < deadline
    {
        glommio::timer::sleep(DRAIN_POLL_INTERVAL).await;
    }
    drop(housekeeping);
    drop(opener);
    for partition in shard.open_partitions() {
        partition.close().await;
    }
    shard.close_commit_log().await;
    coordinator.close().await;
    shard.disconnect().await;
    tracing::debug!(shard = start.id, cross_shard_requests = %shard.request_counts, "shard stopped");
    Ok(())
}

/// With a controller quorum, shard 0 runs this node's voter (`cluster`); otherwise nothing.
fn start_controller(start: &ShardStart, shard: &Rc<Shard>) -> anyhow::Result<()> {
    let config = &start.shared.config;
    if start.id != 0 || config.controller_quorum.is_none() {
        return Ok(());
    }
    let client = cluster::start(shard, start.cluster_view.clone(), start.shutdown.clone())?;
    if let Some(metadata) = &shard.controller {
        metadata.use_quorum(client);
    }
    Ok(())
}

/// Recovers the shard's groups, then binds the listener (none on a controller-only node).
/// Partitions open after, in the background (`Shard::open_owned_partitions`), so start-up listens
/// within seconds whatever their number; a request for one not open yet opens it on the spot.
async fn open_shard(
    shard: &Rc<Shard>,
    config: &BrokerConfig,
) -> anyhow::Result<(Rc<GroupCoordinator>, Option<TcpListener>)> {
    let coordinator = shard.open_group_coordinator().await?;
    if !config.roles.broker {
        return Ok((coordinator, None));
    }
    let listener = TcpListener::bind(config.listen)
        .with_context(|| format!("shard {} cannot listen on {}", shard.id, config.listen))?;
    Ok((coordinator, Some(listener)))
}

/// The last shard to listen prints the start-up line (tests and scripts wait for it).
fn announce_ready(start: &ShardStart) {
    let shared = &start.shared;
    if start.ready.fetch_add(1, Ordering::AcqRel) + 1 != shared.shard_count() {
        return;
    }
    let c = &shared.config;
    let (host, port) = c.advertised_host_port();
    let listening = if c.roles.broker {
        format!("on {} (advertised {host}:{port})", c.listen)
    } else {
        "as a controller only (no Kafka listener)".to_string()
    };
    let line = format!(
        "riffle listening {listening}, node id {}, {} shard(s), data dir {}, open files limit {}",
        c.node_id,
        shared.shard_count(),
        c.data_dir.display(),
        start.open_files_limit
    );
    tracing::info!("{line}");
    println!("{line}");
}

/// Accepts until shutdown. A failed accept (EMFILE leaves the connection in the backlog) pauses
/// the loop with a growing backoff instead of spinning.
async fn accept_connections(
    shard: &Rc<Shard>,
    listener: &TcpListener,
    connections: &Gate,
    start: &ShardStart,
    force_close: &ForceClose,
) {
    let mut refusals = LogThrottle::new(REPEATED_LOG_INTERVAL);
    let mut failures = AcceptBackoff::new();
    loop {
        let accept = Box::pin(listener.accept());
        match select(accept, start.shutdown.clone()).await {
            Either::Left((Ok(stream), _)) => {
                failures.succeeded();
                admit(
                    shard,
                    stream,
                    connections,
                    start,
                    force_close,
                    &mut refusals,
                );
            }
            Either::Left((Err(e), _)) => failures.failed(shard.id, e, &start.shutdown).await,
            Either::Right(_) => return,
        }
    }
}

/// Starts the connection's task, or closes it at once when a connection cap is reached (as Kafka
/// does): the client sees its connection closed before any response and reconnects later.
fn admit(
    shard: &Rc<Shard>,
    stream: TcpStream,
    connections: &Gate,
    start: &ShardStart,
    force_close: &ForceClose,
    refusals: &mut LogThrottle,
) {
    let peer = stream
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let slot = match start.limits.admit(peer.ip()) {
        Ok(slot) => slot,
        Err(refused) => {
            if let Some(unlogged) = refusals.allow() {
                tracing::warn!(
                    shard = shard.id,
                    %peer,
                    "refused connection from {peer}: {refused} ({unlogged} more refused since \
                     the last report)"
                );
            }
            return;
        }
    };
    let accepted = Accepted {
        shard: shard.clone(),
        peer,
        shutdown: start.shutdown.clone(),
        force_close: force_close.clone(),
        slot,
    };
    match connections.spawn(connection::serve(accepted, stream)) {
        Ok(task) => {
            task.detach();
        }
        Err(e) => tracing::warn!(error = %e, "cannot start connection task"),
    }
}

/// Waits for the shard's connections to answer what they have read; after `timeout`, writes
/// still pending are cut (their requests still finish, so no append is cut halfway).
async fn drain_connections(
    shard: usize,
    connections: &Gate,
    timeout: Duration,
    cut_writes: oneshot::Sender<()>,
) {
    let closing = Box::pin(connections.close());
    let closed = match select(closing, Box::pin(glommio::timer::sleep(timeout))).await {
        Either::Left((closed, _)) => closed,
        Either::Right((_, closing)) => {
            tracing::warn!(
                shard,
                "connections still writing after shutdown_timeout_ms ({} ms): cutting them",
                timeout.as_millis()
            );
            let _ = cut_writes.send(());
            closing.await
        }
    };
    if let Err(e) = closed {
        tracing::warn!(shard, error = %e, "closing connections");
    }
}

/// Accept failures in a row: the pause before the next accept doubles up to ACCEPT_BACKOFF_MAX.
struct AcceptBackoff {
    pause: Duration,
    log: LogThrottle,
}

impl AcceptBackoff {
    fn new() -> Self {
        AcceptBackoff {
            pause: ACCEPT_BACKOFF_MIN,
            log: LogThrottle::new(REPEATED_LOG_INTERVAL),
        }
    }

    fn succeeded(&mut self) {
        self.pause = ACCEPT_BACKOFF_MIN;
    }

    async fn failed(&mut self, shard: usize, error: GlommioError<()>, shutdown: &Shutdown) {
        if let Some(unlogged) = self.log.allow() {
            let errno = match &error {
                GlommioError::IoError(e) => e.raw_os_error(),
                GlommioError::EnhancedIoError { source, .. } => source.raw_os_error(),
                _ => None,
            };
            let out_of_descriptors = matches!(errno, Some(libc::EMFILE | libc::ENFILE));
            let what = if out_of_descriptors {
                "accept failed: out of file descriptors (open files limit); new connections \
                 wait in the backlog"
            } else {
                "accept failed"
            };
            tracing::warn!(shard, %error, "{what} ({unlogged} more failures since the last report)");
        }
        let pause = Box::pin(glommio::timer::sleep(self.pause));
        let _ = select(pause, shutdown.clone()).await;
        self.pause = (self.pause * 2).min(ACCEPT_BACKOFF_MAX);
    }
}

/// Lets a repeated event be logged at most once per interval, counting those it holds back.
struct LogThrottle {
    interval: Duration,
    last_logged: Option<Instant>,
    held_back: u64,
}

impl LogThrottle {
    fn new(interval: Duration) -> Self {
        LogThrottle {
            interval,
            last_logged: None,
            held_back: 0,
        }
    }

    /// Some(events held back since the last log) if this one may be logged.
    fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last_logged
            .is_some_and(|last| now.duration_since(last) < self.interval)
        {
            self.held_back += 1;
            return None;
        }
        self.last_logged = Some(now);
        Some(std::mem::take(&mut self.held_back))
    }
}

/// Segment roll by age, retention and producer-state snapshots, for each open partition; offsets
/// retention and compaction for the shard's consumer groups.
async fn housekeeping_loop(shard: Rc<Shard>) {
    loop {
        glommio::timer::sleep(HOUSEKEEPING_INTERVAL).await;
        let now_ms = riffle_storage::clock::now_ms();
        shard.take_failed_logs_offline().await;
        for partition in shard.open_partitions() {
            partition.housekeeping(now_ms).await;
        }
        shard.group_coordinator().housekeeping().await;
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;

    use super::*;

    /// Set in the child process that `a_shard_that_panics_aborts_the_whole_process` starts.
    const FAIL_STOP_CHILD: &str = "RIFFLE_FAIL_STOP_CHILD";

    /// Item 7 of issue 14: a shard that dies must not leave the process serving half a broker
    /// with requests to its partitions hanging. The test runs itself again as a child process
    /// (the abort would end the test binary): there a shard executor panics while the main
    /// thread is busy, as it is joining the other shards in `run`.
    #[test]
    fn a_shard_that_panics_aborts_the_whole_process() {
        if std::env::var_os(FAIL_STOP_CHILD).is_some() {
            install_fail_stop();
            let _shard = LocalExecutorBuilder::new(Placement::Unbound)
                .name("riffle-shard-7")
                .spawn(|| async { panic!("injected shard failure") })
                .expect("an executor");
            // Without fail-stop the process would live on: the test below then sees exit 0.
            std::thread::sleep(Duration::from_secs(10));
            std::process::exit(0);
        }
        let output = Command::new(std::env::current_exe().expect("the test binary"))
            .args([
                "--exact",
                "server::tests::a_shard_that_panics_aborts_the_whole_process",
                "--nocapture",
            ])
            .env(FAIL_STOP_CHILD, "1")
            .output()
            .expect("run the child");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.signal(),
            Some(libc::SIGABRT),
            "the process aborts at once: {:?}\n{stderr}",
            output.status
        );
        assert!(
            stderr.contains("riffle-shard-7") && stderr.contains("injected shard failure"),
            "the abort says which shard died and why: {stderr}"
        );
    }

    #[test]
    fn log_throttle_logs_once_per_interval_and_counts_the_rest() {
        let mut throttle = LogThrottle::new(Duration::from_secs(3600));
        assert_eq!(throttle.allow(), Some(0), "the first event is logged");
        assert_eq!(throttle.allow(), None);
        assert_eq!(throttle.allow(), None);
        throttle.last_logged = Some(Instant::now() - Duration::from_secs(3601));
        assert_eq!(
            throttle.allow(),
            Some(2),
            "the next log says how many were held back"
        );
    }

    #[test]
    fn open_files_limit_is_raised_to_the_hard_limit() {
        let limit = raise_open_files_limit();
        let mut now = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we own.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut now) }, 0);
        assert_eq!(
            now.rlim_cur, limit,
            "the reported limit is the one in force"
        );
        if now.rlim_max != libc::RLIM_INFINITY {
            assert_eq!(now.rlim_cur, now.rlim_max);
        }
    }
}
