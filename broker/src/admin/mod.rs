//! The admin HTTP listener (`admin_listen`, default 127.0.0.1:9644): health, readiness, status,
//! Prometheus metrics and the web console. It runs on its own thread (hyper on a current-thread
//! tokio runtime), off the shards' data path, and learns what the shards do by asking each one
//! (`ShardRequest::Stats`) when a page or a scrape needs it; shards keep their counters local.

mod http;
pub(crate) mod metrics;
mod prometheus;
pub(crate) mod stats;
pub(crate) mod status;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::channel::{mpsc, oneshot};
use futures::{SinkExt, StreamExt};

use crate::cluster::ClusterView;
use crate::shard::{Shard, ShardRequest, ShardResponse, Shared};
use stats::ShardStats;

/// The admin port when none is configured.
pub(crate) const ADMIN_LISTEN_DEFAULT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9644);
/// Calls the admin listener may have queued to one shard; a caller past it waits.
const SHARD_CALLS_QUEUED_MAX: usize = 16;
/// How long a page or a scrape waits for a shard's answer before it fails with 503.
const SHARD_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// A request from the admin thread to one shard, answered on `reply`.
pub(crate) struct AdminCall {
    request: ShardRequest,
    reply: oneshot::Sender<ShardResponse>,
}

/// The receiving end of a shard's admin calls (given to the shard at start).
pub(crate) type AdminInbox = mpsc::Receiver<AdminCall>;

/// What the admin thread knows of the broker. Shared with every shard thread (read-only or
/// atomic); lives for the whole process.
pub(crate) struct Admin {
    shared: Arc<Shared>,
    /// Shards listening that also opened every partition they own (server.rs counts them).
    recovered: Arc<AtomicUsize>,
    started: Instant,
    shards: Vec<mpsc::Sender<AdminCall>>,
    rate_base: std::sync::Mutex<status::RateBase>,
    /// The controller quorum as this node sees it (`/v1/cluster`).
    cluster: Arc<ClusterView>,
}

/// Why the admin listener cannot answer from the shards.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdminError {
    #[error("shard {shard} did not answer within {timeout_ms} ms")]
    ShardTimeout { shard: usize, timeout_ms: u128 },
    #[error("shard {0} is not running")]
    ShardGone(usize),
}

impl Admin {
    /// Ready: every shard recovered its logs, loaded its groups and listens, and no shutdown
    /// has begun. Otherwise the reason.
    fn readiness(&self) -> Result<(), String> {
        if self.shared.is_shutting_down() {
            return Err("shutting down".to_string());
        }
        let recovered = self.recovered.load(Ordering::Acquire);
        let shards = self.shared.shard_count();
        if recovered < shards {
            return Err(format!(
                "starting: {recovered} of {shards} shard(s) recovered their logs and serve"
            ));
        }
        Ok(())
    }

    /// Asks every shard for its report, all at once.
    async fn gather(&self) -> Result<Vec<ShardStats>, AdminError> {
        let asks = self.shards.iter().enumerate().map(|(shard, sender)| {
            let mut sender = sender.clone();
            async move {
                let (reply, answer) = oneshot::channel();
                let call = AdminCall {
                    request: ShardRequest::Stats,
                    reply,
                };
                let asked = async {
                    sender
                        .send(call)
                        .await
                        .map_err(|_| AdminError::ShardGone(shard))?;
                    match answer.await {
                        Ok(ShardResponse::Stats(stats)) => Ok(*stats),
                        _ => Err(AdminError::ShardGone(shard)),
                    }
                };
                tokio::time::timeout(SHARD_ANSWER_TIMEOUT, asked)
                    .await
                    .map_err(|_| AdminError::ShardTimeout {
                        shard,
                        timeout_ms: SHARD_ANSWER_TIMEOUT.as_millis(),
                    })?
            }
        });
        futures::future::join_all(asks).await.into_iter().collect()
    }

    /// `/v1/cluster`: the cluster id, this node's roles, and the quorum (null on a node with no
    /// `controller_quorum`, or before its controller started).
    fn cluster(&self) -> serde_json::Value {
        let config = &self.shared.config;
        serde_json::json!({
            "cluster_id": config.cluster_id,
            "node_id": config.node_id,
            "roles": config.roles.to_string(),
            "quorum": self.cluster.status(),
        })
    }

    async fn status(&self) -> Result<(status::Status, Vec<ShardStats>), AdminError> {
        let reports = self.gather().await?;
        let ready = self.readiness().is_ok();
        let mut base = self
            .rate_base
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let status = status::build(&self.shared, ready, self.started, &reports, &mut base);
        Ok((status, reports))
    }
}

/// The admin listener, bound and ready to be started once the shards' inboxes exist.
pub(crate) struct AdminListener {
    listener: TcpListener,
    pub addr: SocketAddr,
}

/// Binds the admin address. With no address configured, the default port in use is a warning
/// (the broker runs without admin listener); a configured address that cannot be bound is an
/// error.
pub(crate) fn bind(configured: Option<SocketAddr>) -> anyhow::Result<Option<AdminListener>> {
    let addr = configured.unwrap_or(ADMIN_LISTEN_DEFAULT);
    match TcpListener::bind(addr) {
        Ok(listener) => {
            listener.set_nonblocking(true)?;
            let addr = listener.local_addr()?;
            Ok(Some(AdminListener { listener, addr }))
        }
        Err(e) if configured.is_none() => {
            tracing::warn!(%addr, error = %e, "no admin listener: the default admin address cannot be bound; set admin_listen (--admin-listen)");
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen on admin address {addr}")),
    }
}

/// One inbox per shard, and the senders the admin thread keeps.
pub(crate) fn inboxes(shards: usize) -> (Vec<mpsc::Sender<AdminCall>>, Vec<AdminInbox>) {
    (0..shards)
        .map(|_| mpsc::channel(SHARD_CALLS_QUEUED_MAX))
        .unzip()
}

/// Starts the admin thread serving `listener`.
pub(crate) fn start(
    listener: AdminListener,
    shared: Arc<Shared>,
    recovered: Arc<AtomicUsize>,
    shards: Vec<mpsc::Sender<AdminCall>>,
    cluster: Arc<ClusterView>,
) -> anyhow::Result<()> {
    let admin = Arc::new(Admin {
        shared,
        recovered,
        started: Instant::now(),
        shards,
        rate_base: Default::default(),
        cluster,
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("starting the admin listener's runtime")?;
    std::thread::Builder::new()
        .name("riffle-admin".into())
        .spawn(move || runtime.block_on(http::serve(listener.listener, admin)))
        .context("starting the admin thread")?;
    Ok(())
}

/// Answers the admin thread's calls on this shard, one at a time, until the admin side goes.
pub(crate) async fn answer_calls(shard: std::rc::Rc<Shard>, mut inbox: AdminInbox) {
    while let Some(call) = inbox.next().await {
        let response = shard.clone().serve(call.request).await;
        let _ = call.reply.send(response);
    }
}
