//! `/v1/status`: the shards' reports joined with the metadata image into one JSON document
//! (node, shards, topics with their partitions per shard, groups with lag, disk), with rates
//! computed against the previous report the admin listener kept.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::stats::ShardStats;
use crate::groups::shard_of;
use crate::metadata::image::MetadataImage;
use crate::shard::Shared;

/// A report older than this becomes the new base of the rates; a younger one keeps the old
/// base, so that two readers polling at once still see rates over at least this long.
pub(crate) const RATE_WINDOW_MIN: Duration = Duration::from_secs(1);

/// Traffic totals at one moment, the base of the next report's rates.
#[derive(Default)]
pub(crate) struct RateBase {
    at: Option<Instant>,
    shards: HashMap<usize, Traffic>,
    partitions: HashMap<(String, i32), Traffic>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Traffic {
    pub bytes_in: u64,
    pub records_in: u64,
    pub bytes_out: u64,
    pub records_out: u64,
    pub requests: u64,
}

/// Per-second rates of a `Traffic` over the report's window.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Rates {
    pub bytes_in_per_sec: f64,
    pub records_in_per_sec: f64,
    pub bytes_out_per_sec: f64,
    pub records_out_per_sec: f64,
    pub requests_per_sec: f64,
}

impl Traffic {
    fn rates_since(&self, base: Option<&Traffic>, window: Option<Duration>) -> Rates {
        let (Some(base), Some(window)) = (base, window) else {
            return Rates::default();
        };
        let secs = window.as_secs_f64().max(1e-3);
        let per_sec = |now: u64, then: u64| now.saturating_sub(then) as f64 / secs;
        Rates {
            bytes_in_per_sec: per_sec(self.bytes_in, base.bytes_in),
            records_in_per_sec: per_sec(self.records_in, base.records_in),
            bytes_out_per_sec: per_sec(self.bytes_out, base.bytes_out),
            records_out_per_sec: per_sec(self.records_out, base.records_out),
            requests_per_sec: per_sec(self.requests, base.requests),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct Status {
    pub node_id: i32,
    pub cluster_id: String,
    pub version: &'static str,
    pub listen: String,
    pub advertised: String,
    pub ready: bool,
    pub uptime_ms: u64,
    /// The rates' window (null on the first report).
    pub rate_window_ms: Option<u64>,
    pub shards: Vec<ShardStatus>,
    pub topics: Vec<TopicStatus>,
    pub groups: Vec<GroupStatus>,
    pub disk: DiskStatus,
}

#[derive(Debug, Serialize)]
pub(crate) struct ShardStatus {
    pub shard: usize,
    pub partitions: Vec<PartitionStatus>,
    pub connections: u64,
    pub inflight_bytes: u64,
    pub tail_cache_bytes: u64,
    /// In-flight request bytes plus tail caches: the memory this shard's load holds.
    pub memory_bytes: u64,
    pub totals: Traffic,
    pub rates: Rates,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct PartitionStatus {
    pub topic: String,
    pub partition: i32,
    pub shard: usize,
    /// False when the partition has not been opened since start (no traffic yet).
    pub open: bool,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
    pub size_bytes: u64,
    pub totals: Traffic,
    pub rates: Rates,
}

#[derive(Debug, Serialize)]
pub(crate) struct TopicStatus {
    pub name: String,
    pub partitions: usize,
    pub size_bytes: u64,
    /// Records below the high watermarks and at or above the log starts.
    pub records: i64,
    pub rates: Rates,
}

#[derive(Debug, Serialize)]
pub(crate) struct GroupStatus {
    pub group_id: String,
    pub state: &'static str,
    pub protocol_type: String,
    pub coordinator_shard: usize,
    pub members: Vec<super::stats::MemberStats>,
    pub partitions: Vec<GroupPartitionStatus>,
    /// Sum of the partitions' lag.
    pub lag: i64,
}

#[derive(Debug, Serialize)]
pub(crate) struct GroupPartitionStatus {
    pub topic: String,
    pub partition: i32,
    pub committed_offset: i64,
    pub high_watermark: Option<i64>,
    /// High watermark minus committed offset (None when the partition is unknown).
    pub lag: Option<i64>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct DiskStatus {
    pub data_dir: String,
    /// Bytes of batches in every partition's segments.
    pub log_bytes: u64,
    pub filesystem_bytes: u64,
    pub filesystem_free_bytes: u64,
}

/// Joins the shards' reports with the image; moves `base` forward when it is old enough.
pub(crate) fn build(
    shared: &Shared,
    ready: bool,
    started: Instant,
    reports: &[ShardStats],
    base: &mut RateBase,
) -> Status {
    let now = Instant::now();
    let window = base.at.map(|at| now.duration_since(at));
    let image = shared.image.load_full();
    let partitions = partitions(&image, reports, base, window);
    let shards = reports
        .iter()
        .map(|r| shard_status(r, &partitions, base, window))
        .collect();
    let groups = groups(reports, &partitions, shared.shard_count());
    let topics = topics(&image, &partitions);
    let config = &shared.config;
    let (host, port) = config.advertised_host_port();
    let status = Status {
        node_id: config.node_id,
        cluster_id: config.cluster_id.clone(),
        version: env!("CARGO_PKG_VERSION"),
        listen: config.listen.to_string(),
        advertised: format!("{host}:{port}"),
        ready,
        uptime_ms: now.duration_since(started).as_millis() as u64,
        rate_window_ms: window.map(|w| w.as_millis() as u64),
        shards,
        topics,
        groups,
        disk: disk(&config.data_dir, &partitions),
    };
    if window.is_none_or(|w| w >= RATE_WINDOW_MIN) {
        *base = RateBase {
            at: Some(now),
            shards: status.shards.iter().map(|s| (s.shard, s.totals)).collect(),
            partitions: partitions
                .iter()
                .map(|p| ((p.topic.clone(), p.partition), p.totals))
                .collect(),
        };
    }
    status
}

/// Every partition of the image, with its shard's report when it is open.
fn partitions(
    image: &MetadataImage,
    reports: &[ShardStats],
    base: &RateBase,
    window: Option<Duration>,
) -> Vec<PartitionStatus> {
    let open: HashMap<(&str, i32), _> = reports
        .iter()
        .flat_map(|r| r.partitions.iter())
        .map(|p| ((p.topic.as_str(), p.partition), p))
        .collect();
    let mut out = Vec::new();
    for topic in image.topics.values() {
        for (index, meta) in topic.partitions.iter().enumerate() {
            let index = index as i32;
            let stats = open.get(&(topic.name.as_str(), index));
            let totals = stats.map_or_else(Traffic::default, |s| Traffic {
                bytes_in: s.bytes_in,
                records_in: s.records_in,
                bytes_out: s.bytes_out,
                records_out: s.records_out,
                requests: 0,
            });
            let key = (topic.name.clone(), index);
            out.push(PartitionStatus {
                rates: totals.rates_since(base.partitions.get(&key), window),
                topic: key.0,
                partition: index,
                shard: meta.shard as usize,
                open: stats.is_some(),
                log_start_offset: stats.map_or(0, |s| s.log_start_offset),
                log_end_offset: stats.map_or(0, |s| s.log_end_offset),
                high_watermark: stats.map_or(0, |s| s.high_watermark),
                size_bytes: stats.map_or(0, |s| s.size_bytes),
                totals,
            });
        }
    }
    out
}

fn shard_status(
    report: &ShardStats,
    partitions: &[PartitionStatus],
    base: &RateBase,
    window: Option<Duration>,
) -> ShardStatus {
    let m = &report.metrics;
    let totals = Traffic {
        bytes_in: m.bytes_in,
        records_in: m.records_in,
        bytes_out: m.bytes_out,
        records_out: m.records_out,
        requests: m.requests_total(),
    };
    ShardStatus {
        shard: report.shard,
        partitions: partitions
            .iter()
            .filter(|p| p.shard == report.shard)
            .cloned()
            .collect(),
        connections: m.connections,
        inflight_bytes: report.inflight_bytes,
        tail_cache_bytes: report.tail_cache_bytes,
        memory_bytes: report.inflight_bytes + report.tail_cache_bytes,
        rates: totals.rates_since(base.shards.get(&report.shard), window),
        totals,
    }
}

fn topics(image: &MetadataImage, partitions: &[PartitionStatus]) -> Vec<TopicStatus> {
    image
        .topics
        .values()
        .map(|topic| {
            let mine = partitions.iter().filter(|p| p.topic == topic.name);
            let mut t = TopicStatus {
                name: topic.name.clone(),
                partitions: topic.partitions.len(),
                size_bytes: 0,
                records: 0,
                rates: Rates::default(),
            };
            for p in mine {
                t.size_bytes += p.size_bytes;
                t.records += (p.high_watermark - p.log_start_offset).max(0);
                t.rates.bytes_in_per_sec += p.rates.bytes_in_per_sec;
                t.rates.records_in_per_sec += p.rates.records_in_per_sec;
                t.rates.bytes_out_per_sec += p.rates.bytes_out_per_sec;
                t.rates.records_out_per_sec += p.rates.records_out_per_sec;
            }
            t
        })
        .collect()
}

fn groups(
    reports: &[ShardStats],
    partitions: &[PartitionStatus],
    shards: usize,
) -> Vec<GroupStatus> {
    let high_watermarks: HashMap<(&str, i32), i64> = partitions
        .iter()
        .filter(|p| p.open)
        .map(|p| ((p.topic.as_str(), p.partition), p.high_watermark))
        .collect();
    let mut out: Vec<GroupStatus> = reports
        .iter()
        .flat_map(|r| r.groups.iter())
        .map(|g| {
            let partitions: Vec<GroupPartitionStatus> = g
                .committed
                .iter()
                .map(|(topic, partition, committed)| {
                    let hw = high_watermarks.get(&(topic.as_str(), *partition)).copied();
                    GroupPartitionStatus {
                        topic: topic.clone(),
                        partition: *partition,
                        committed_offset: *committed,
                        high_watermark: hw,
                        lag: hw.map(|hw| (hw - committed).max(0)),
                    }
                })
                .collect();
            GroupStatus {
                group_id: g.group_id.clone(),
                state: g.state,
                protocol_type: g.protocol_type.clone(),
                coordinator_shard: shard_of(&g.group_id, shards),
                members: g.members.clone(),
                lag: partitions.iter().filter_map(|p| p.lag).sum(),
                partitions,
            }
        })
        .collect();
    out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    for g in &mut out {
        g.partitions
            .sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    }
    out
}

fn disk(data_dir: &Path, partitions: &[PartitionStatus]) -> DiskStatus {
    let (filesystem_bytes, filesystem_free_bytes) = filesystem_size(data_dir).unwrap_or((0, 0));
    DiskStatus {
        data_dir: data_dir.display().to_string(),
        log_bytes: partitions.iter().map(|p| p.size_bytes).sum(),
        filesystem_bytes,
        filesystem_free_bytes,
    }
}

/// (total, available to unprivileged users) bytes of the file system holding `dir`.
pub(crate) fn filesystem_size(dir: &Path) -> Option<(u64, u64)> {
    let c_path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs only writes into the zeroed struct we pass; c_path is a valid C string.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c_path.as_ptr(), &mut st) != 0 {
            return None;
        }
        let block = st.f_frsize as u64;
        Some((st.f_blocks as u64 * block, st.f_bavail as u64 * block))
    }
}
