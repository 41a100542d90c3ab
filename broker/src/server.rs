//! Start-up and shutdown: one pinned glommio executor per shard, each listening on the Kafka port
//! with SO_REUSEPORT; SIGINT/SIGTERM stop accepting, let in-flight requests finish, then flush and
//! close every log.

use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use arc_swap::ArcSwap;
use futures::channel::oneshot;
use futures::future::{select, Either, FutureExt};
use glommio::net::TcpListener;
use glommio::sync::Gate;
use glommio::{LocalExecutorBuilder, Placement, PoolPlacement};

use crate::config::BrokerConfig;
use crate::metadata::{store, Controller};
use crate::shard::{mesh, Links, Shard, Shared};
use crate::topic_config::HOUSEKEEPING_INTERVAL;
use crate::{connection, Shutdown};

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

/// The CPUs this process may run on.
pub(crate) fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills the zeroed cpu_set_t we pass with its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
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

    let shared = Arc::new(Shared {
        config,
        image: ArcSwap::from_pointee(image),
        shards,
        shutting_down: Default::default(),
    });

    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let shutdown: Shutdown = stop_rx.map(|_| ()).boxed().shared();
    spawn_signal_thread(shared.clone(), stop_tx)?;

    let ready = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::with_capacity(shards);
    for (id, links) in mesh(shards).into_iter().enumerate() {
        let placement = if shards <= cpus.len() {
            Placement::Fixed(cpus[id])
        } else {
            Placement::Unbound
        };
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        let ready = ready.clone();
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("riffle-shard-{id}"))
            .io_memory(shared.config.io_memory_bytes)
            .preempt_timer(Duration::from_millis(10))
            // Unbound: sync threads sleep in the disk, and should not queue behind the shard.
            .blocking_thread_pool_placement(PoolPlacement::Unbound(
                shared.config.sync_threads_per_shard,
            ))
            .spawn(move || shard_main(id, shared, links, shutdown, ready))
            .with_context(|| format!("starting shard {id}"))?;
        handles.push(handle);
    }
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

/// Asks the whole process to shut down, as SIGTERM does (used when one shard cannot start).
fn stop_process() {
    // SAFETY: sending a signal to our own process touches no memory.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGTERM);
    }
}

fn spawn_signal_thread(shared: Arc<Shared>, stop: oneshot::Sender<()>) -> anyhow::Result<()> {
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
                } else {
                    tracing::warn!(signal, "second signal: exiting now");
                    std::process::exit(130);
                }
            }
        })?;
    Ok(())
}

async fn shard_main(
    id: usize,
    shared: Arc<Shared>,
    links: Links,
    shutdown: Shutdown,
    ready: Arc<AtomicUsize>,
) -> anyhow::Result<()> {
    let controller = (id == 0).then(|| Rc::new(Controller::new(shared.config.data_dir.clone())));
    let shard = Shard::start(id, shared.clone(), controller, shutdown.clone(), links).await;
    if let Err(e) = shard.open_owned_partitions().await {
        // One shard failing stops the others, so the process does not limp on half-served.
        stop_process();
        return Err(e);
    }
    let coordinator = match shard.open_group_coordinator().await {
        Ok(c) => c,
        Err(e) => {
            stop_process();
            return Err(e);
        }
    };
    glommio::spawn_local(coordinator.clone().run_timers(shutdown.clone())).detach();

    let listener = match TcpListener::bind(shared.config.listen) {
        Ok(l) => l,
        Err(e) => {
            stop_process();
            return Err(e)
                .with_context(|| format!("shard {id} cannot listen on {}", shared.config.listen));
        }
    };
    if ready.fetch_add(1, Ordering::AcqRel) + 1 == shared.shard_count() {
        let c = &shared.config;
        let (host, port) = c.advertised_host_port();
        let line = format!(
            "riffle listening on {} (advertised {host}:{port}), node id {}, {} shard(s), data dir {}",
            c.listen,
            c.node_id,
            shared.shard_count(),
            c.data_dir.display()
        );
        tracing::info!("{line}");
        println!("{line}");
    }

    let housekeeping = glommio::spawn_local(housekeeping_loop(shard.clone()));
    let connections = Gate::new();
    loop {
        let accept = Box::pin(listener.accept());
        match select(accept, shutdown.clone()).await {
            Either::Left((Ok(stream), _)) => {
                let peer = stream
                    .peer_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                let shard = shard.clone();
                let shutdown = shutdown.clone();
                match connections
                    .spawn(async move { connection::serve(shard, stream, peer, shutdown).await })
                {
                    Ok(task) => {
                        task.detach();
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot start connection task"),
                }
            }
            Either::Left((Err(e), _)) => {
                tracing::warn!(shard = id, error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
            Either::Right(_) => break,
        }
    }
    drop(listener);
    // Connections stop reading, answer what they have read, then end.
    if let Err(e) = connections.close().await {
        tracing::warn!(shard = id, error = %e, "closing connections");
    }
    drop(housekeeping);
    for partition in shard.open_partitions() {
        partition.close().await;
    }
    coordinator.close().await;
    tracing::debug!(shard = id, cross_shard_requests = %shard.request_counts, "shard stopped");
    Ok(())
}

/// Segment roll by age, retention and producer-state snapshots, for each open partition; offsets
/// retention and compaction for the shard's consumer groups.
async fn housekeeping_loop(shard: Rc<Shard>) {
    loop {
        glommio::timer::sleep(HOUSEKEEPING_INTERVAL).await;
        let now_ms = crate::clock::now_ms();
        for partition in shard.open_partitions() {
            partition.housekeeping(now_ms).await;
        }
        shard.group_coordinator().housekeeping().await;
    }
}
