//! `/metrics` in Prometheus' text exposition format (version 0.0.4): the shards' counters and
//! histograms, partitions, consumer-group lag and disk, rendered from one `/v1/status`-style
//! gathering. Every series carries the labels that locate it (shard, topic, partition, group).

use std::fmt::Write;

use super::metrics::{HistogramSnapshot, LATENCY_BUCKET_BOUNDS_US};
use super::stats::ShardStats;
use super::status::Status;

/// The content type Prometheus expects for the text format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One exposition: a `# HELP`/`# TYPE` header per family, then its samples.
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{key}=\"{}\"", escape(value));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A histogram's cumulative `_bucket` series, `_sum` (seconds) and `_count`.
    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let mut cumulative = 0u64;
        let bucket = format!("{name}_bucket");
        for (i, count) in h.buckets.iter().enumerate() {
            cumulative += count;
            let le = match LATENCY_BUCKET_BOUNDS_US.get(i) {
                Some(us) => seconds(*us),
                None => "+Inf".to_string(),
            };
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, cumulative);
        }
        self.sample(&format!("{name}_sum"), labels, seconds(h.sum_us));
        self.sample(&format!("{name}_count"), labels, cumulative);
    }
}

fn seconds(us: u64) -> String {
    format!("{}", us as f64 / 1e6)
}

/// Label values escape backslash, double quote and newline (the format's rules).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders everything the admin listener gathered.
pub(crate) fn render(status: &Status, reports: &[ShardStats]) -> String {
    let mut out = Exposition(String::with_capacity(16 * 1024));
    out.family(
        "riffle_ready",
        "gauge",
        "1 once logs are recovered, metadata loaded and every shard serves",
    );
    out.sample("riffle_ready", &[], u8::from(status.ready));
    shard_counters(&mut out, reports);
    latencies(&mut out, reports);
    partitions(&mut out, status);
    groups(&mut out, status);
    disk(&mut out, status);
    out.0
}

fn shard_counters(out: &mut Exposition, reports: &[ShardStats]) {
    type Read = fn(&ShardStats) -> u64;
    let families: [(&str, &str, &str, Read); 14] = [
        (
            "riffle_shard_bytes_in_total",
            "counter",
            "Record batch bytes appended by produce requests",
            |r| r.metrics.bytes_in,
        ),
        (
            "riffle_shard_records_in_total",
            "counter",
            "Records appended by produce requests",
            |r| r.metrics.records_in,
        ),
        (
            "riffle_shard_bytes_out_total",
            "counter",
            "Record batch bytes handed to fetch requests",
            |r| r.metrics.bytes_out,
        ),
        (
            "riffle_shard_records_out_total",
            "counter",
            "Records handed to fetch requests",
            |r| r.metrics.records_out,
        ),
        (
            "riffle_device_flushes_total",
            "counter",
            "Device cache flushes that made the writes of all the shard's logs durable at once",
            |r| r.metrics.device_flushes,
        ),
        (
            "riffle_segments_recycled_total",
            "counter",
            "New segments that reused one retention deleted, so no zeros were written ahead of their data",
            |r| r.metrics.recycled_segments,
        ),
        (
            "riffle_connections",
            "gauge",
            "Client connections open on the shard",
            |r| r.metrics.connections,
        ),
        (
            "riffle_connections_accepted_total",
            "counter",
            "Client connections the shard has accepted",
            |r| r.metrics.connections_accepted,
        ),
        (
            "riffle_inflight_bytes",
            "gauge",
            "Request bytes read and not yet answered (shard_inflight_budget_bytes in use)",
            |r| r.inflight_bytes,
        ),
        (
            "riffle_inflight_budget_bytes",
            "gauge",
            "The shard's in-flight budget (shard_inflight_budget_bytes)",
            |r| r.inflight_budget_bytes,
        ),
        (
            "riffle_tail_cache_bytes",
            "gauge",
            "Bytes of recent batches the shard's partitions keep in memory",
            |r| r.tail_cache_bytes,
        ),
        (
            "riffle_open_segment_files",
            "gauge",
            "Sealed segment files the shard keeps open (at most max_open_segment_files)",
            |r| r.open_segment_files,
        ),
        (
            "riffle_tail_cache_hits_total",
            "counter",
            "Log reads served from the tail cache",
            |r| r.metrics.tail_cache_hits,
        ),
        (
            "riffle_tail_cache_misses_total",
            "counter",
            "Log reads that went to disk",
            |r| r.metrics.tail_cache_misses,
        ),
    ];
    for (name, kind, help, read) in families {
        out.family(name, kind, help);
        for r in reports {
            out.sample(name, &[("shard", &r.shard.to_string())], read(r));
        }
    }
    out.family(
        "riffle_tail_cache_hit_ratio",
        "gauge",
        "Tail cache hits over all log reads since start (NaN before the first read)",
    );
    for r in reports {
        let reads = r.metrics.tail_cache_hits + r.metrics.tail_cache_misses;
        let ratio = r.metrics.tail_cache_hits as f64 / reads as f64;
        out.sample(
            "riffle_tail_cache_hit_ratio",
            &[("shard", &r.shard.to_string())],
            ratio,
        );
    }
    let name = "riffle_cross_shard_requests_total";
    out.family(
        name,
        "counter",
        "Requests between shards, by kind, as sent and as served by this shard",
    );
    for r in reports {
        let shard = r.shard.to_string();
        for (kind, sent, served) in &r.cross_shard {
            out.sample(
                name,
                &[("shard", &shard), ("kind", kind), ("direction", "sent")],
                sent,
            );
            out.sample(
                name,
                &[("shard", &shard), ("kind", kind), ("direction", "served")],
                served,
            );
        }
    }
}

fn latencies(out: &mut Exposition, reports: &[ShardStats]) {
    let name = "riffle_request_duration_seconds";
    out.family(
        name,
        "histogram",
        "Time from a request's decoding to its answer, per API",
    );
    for r in reports {
        let shard = r.shard.to_string();
        for (api, h) in &r.metrics.requests {
            out.histogram(name, &[("shard", &shard), ("api", api)], h);
        }
    }
    let name = "riffle_log_append_duration_seconds";
    out.family(
        name,
        "histogram",
        "Time to append a produce request's batches to a partition log",
    );
    for r in reports {
        out.histogram(name, &[("shard", &r.shard.to_string())], &r.metrics.append);
    }
    let name = "riffle_log_fdatasync_duration_seconds";
    out.family(
        name,
        "histogram",
        "Time a log waited for its writes to be durable: its own fdatasync, or its share of the shard's device flush",
    );
    for r in reports {
        out.histogram(
            name,
            &[("shard", &r.shard.to_string())],
            &r.metrics.fdatasync,
        );
    }
}

fn partitions(out: &mut Exposition, status: &Status) {
    type Read = fn(&super::status::PartitionStatus) -> i64;
    let families: [(&str, &str, &str, Read); 8] = [
        (
            "riffle_partition_bytes_in_total",
            "counter",
            "Record batch bytes appended to the partition since start",
            |p| p.totals.bytes_in as i64,
        ),
        (
            "riffle_partition_records_in_total",
            "counter",
            "Records appended to the partition since start",
            |p| p.totals.records_in as i64,
        ),
        (
            "riffle_partition_bytes_out_total",
            "counter",
            "Record batch bytes read from the partition by fetches since start",
            |p| p.totals.bytes_out as i64,
        ),
        (
            "riffle_partition_records_out_total",
            "counter",
            "Records read from the partition by fetches since start",
            |p| p.totals.records_out as i64,
        ),
        (
            "riffle_partition_log_start_offset",
            "gauge",
            "The partition's log start offset",
            |p| p.log_start_offset,
        ),
        (
            "riffle_partition_log_end_offset",
            "gauge",
            "The partition's log end offset",
            |p| p.log_end_offset,
        ),
        (
            "riffle_partition_high_watermark",
            "gauge",
            "The partition's high watermark (its durable end)",
            |p| p.high_watermark,
        ),
        (
            "riffle_partition_size_bytes",
            "gauge",
            "Bytes of batches in the partition's segments",
            |p| p.size_bytes as i64,
        ),
    ];
    let all: Vec<_> = status.shards.iter().flat_map(|s| &s.partitions).collect();
    for (name, kind, help, read) in families {
        out.family(name, kind, help);
        for p in &all {
            let (partition, shard) = (p.partition.to_string(), p.shard.to_string());
            let labels = [
                ("topic", p.topic.as_str()),
                ("partition", &partition),
                ("shard", &shard),
            ];
            out.sample(name, &labels, read(p));
        }
    }
}

fn groups(out: &mut Exposition, status: &Status) {
    out.family(
        "riffle_consumer_group_members",
        "gauge",
        "Members of the consumer group",
    );
    for g in &status.groups {
        out.sample(
            "riffle_consumer_group_members",
            &[("group", &g.group_id)],
            g.members.len(),
        );
    }
    let committed = "riffle_consumer_group_committed_offset";
    out.family(
        committed,
        "gauge",
        "The group's committed offset for the partition",
    );
    let lag = "riffle_consumer_group_lag";
    out.family(
        lag,
        "gauge",
        "High watermark minus the group's committed offset",
    );
    for g in &status.groups {
        for p in &g.partitions {
            let partition = p.partition.to_string();
            let labels = [
                ("group", g.group_id.as_str()),
                ("topic", &p.topic),
                ("partition", &partition),
            ];
            out.sample(committed, &labels, p.committed_offset);
            if let Some(l) = p.lag {
                out.sample(lag, &labels, l);
            }
        }
    }
}

fn disk(out: &mut Exposition, status: &Status) {
    let d = &status.disk;
    let families = [
        (
            "riffle_log_bytes",
            "Bytes of batches in every partition's segments",
            d.log_bytes,
        ),
        (
            "riffle_filesystem_bytes",
            "Size of the file system holding the data dir",
            d.filesystem_bytes,
        ),
        (
            "riffle_filesystem_free_bytes",
            "Free bytes of the file system holding the data dir",
            d.filesystem_free_bytes,
        ),
    ];
    for (name, help, value) in families {
        out.family(name, "gauge", help);
        out.sample(name, &[("data_dir", &d.data_dir)], value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_escape_quotes_backslashes_and_newlines() {
        let mut out = Exposition(String::new());
        out.sample("m", &[("topic", "a\"b\\c\nd")], 1);
        assert_eq!(out.0, "m{topic=\"a\\\"b\\\\c\\nd\"} 1\n");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let mut buckets = vec![0; LATENCY_BUCKET_BOUNDS_US.len() + 1];
        buckets[0] = 2;
        buckets[3] = 1;
        *buckets.last_mut().unwrap() = 1;
        let h = HistogramSnapshot {
            buckets,
            sum_us: 1_500_000,
        };
        let mut out = Exposition(String::new());
        out.histogram("h", &[("shard", "0")], &h);
        let lines: Vec<&str> = out.0.lines().collect();
        assert_eq!(lines[0], "h_bucket{shard=\"0\",le=\"0.00005\"} 2");
        assert_eq!(lines[3], "h_bucket{shard=\"0\",le=\"0.0005\"} 3");
        assert!(lines.contains(&"h_bucket{shard=\"0\",le=\"+Inf\"} 4"));
        assert!(lines.contains(&"h_sum{shard=\"0\"} 1.5"));
        assert!(lines.contains(&"h_count{shard=\"0\"} 4"));
    }
}
