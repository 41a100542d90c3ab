//! A run's results on disk: `summary.json`, one `<kind>.hgrm` per latency kind measured,
//! and `timeline.csv` (per second: messages, MB/s, p50/p99 of the primary latency, errors).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::hgrm::to_hgrm;
use crate::stats::{Counter, Interval, Kind, SecondRow};

/// Latency percentiles in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
}

impl Percentiles {
    pub(crate) fn of(h: &Histogram<u64>) -> Percentiles {
        Percentiles {
            count: h.len(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            p9999: h.value_at_quantile(0.9999),
            max: h.max(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Summary {
    /// produce, consume or e2e.
    pub workload: String,
    /// The command line that produced this run.
    pub command: String,
    /// Workload parameters (topic, size, rate, acks, …) as given.
    pub params: BTreeMap<String, serde_json::Value>,
    /// Messages measured (after the warm-up): acknowledged for produce, received otherwise.
    pub messages: u64,
    pub bytes: u64,
    /// Measured duration (the warm-up excluded).
    pub duration_s: f64,
    pub msgs_per_s: f64,
    pub mb_per_s: f64,
    /// Including the warm-up (for produce: what the broker was sent and acknowledged).
    pub messages_total: u64,
    pub bytes_total: u64,
    /// Which latency kind `latency_us` is: produce, fetch or e2e.
    pub latency_kind: String,
    pub latency_us: Percentiles,
    /// Every latency kind measured.
    pub latencies: BTreeMap<String, Percentiles>,
    pub produced: Counter,
    pub consumed: Counter,
    pub errors: u64,
    pub error_samples: Vec<String>,
    /// Messages due before the stop but unacknowledged then.
    #[serde(default)]
    pub backlog_at_stop: u64,
    /// Target rate in msgs/s (0: flat out).
    pub target_rate: f64,
    /// False when, at the stop, more than 2% of the messages due were not yet acknowledged.
    pub target_rate_met: bool,
    pub notes: Vec<String>,
    /// CPU seconds riffle-loadgen itself used during the run.
    #[serde(default)]
    pub loadgen_cpu_s: f64,
    /// That CPU time as a fraction of its worker threads' wall time (1.0: every worker busy).
    #[serde(default)]
    pub loadgen_cpu_util: f64,
}

/// Achieved rate counts as meeting the target within this fraction.
const RATE_TOLERANCE: f64 = 0.98;

pub(crate) struct RunResult<'a> {
    pub workload: &'a str,
    pub params: BTreeMap<String, serde_json::Value>,
    pub total: &'a Interval,
    pub timeline: &'a [SecondRow],
    pub primary: Kind,
    pub consumer_side: bool,
    pub duration_s: f64,
    pub target_rate: f64,
    pub notes: Vec<String>,
}

pub(crate) fn summarize(r: &RunResult<'_>) -> Summary {
    let c = if r.consumer_side {
        r.total.consumed
    } else {
        r.total.produced
    };
    let msgs_per_s = c.messages as f64 / r.duration_s;
    // Messages due before the stop are all sent and measured, however late; the target was
    // met if few of them were still unacknowledged at the stop.
    let scheduled = r.target_rate * r.duration_s;
    let backlog = r.total.backlog_at_stop as f64;
    let target_rate_met = r.target_rate == 0.0 || backlog <= scheduled * (1.0 - RATE_TOLERANCE);
    let mut notes = r.notes.clone();
    if r.target_rate == 0.0 && r.total.produced.messages_total > 0 {
        notes.push(
            "flat out: produce latency counts from when each batch was built (closed loop, a \
             stall delays the next batches instead of showing up); use --rate for open-loop latency"
                .into(),
        );
    }
    if !target_rate_met {
        notes.push(format!(
            "target rate NOT reached: {backlog:.0} messages due were still unacknowledged at the \
             stop (target {:.0} msgs/s); those sent later are measured from their intended time",
            r.target_rate
        ));
    }
    let mut latencies = BTreeMap::new();
    for k in Kind::ALL {
        let h = &r.total.hists[k as usize];
        if !h.is_empty() {
            latencies.insert(k.name().to_string(), Percentiles::of(h));
        }
    }
    Summary {
        workload: r.workload.into(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        params: r.params.clone(),
        messages: c.messages,
        bytes: c.bytes,
        duration_s: r.duration_s,
        msgs_per_s,
        mb_per_s: c.bytes as f64 / 1e6 / r.duration_s,
        messages_total: c.messages_total,
        bytes_total: c.bytes_total,
        latency_kind: r.primary.name().into(),
        latency_us: Percentiles::of(&r.total.hists[r.primary as usize]),
        latencies,
        produced: r.total.produced,
        consumed: r.total.consumed,
        errors: r.total.errors,
        error_samples: r.total.error_samples.clone(),
        backlog_at_stop: r.total.backlog_at_stop,
        target_rate: r.target_rate,
        target_rate_met,
        notes,
        loadgen_cpu_s: 0.0,
        loadgen_cpu_util: 0.0,
    }
}

pub(crate) fn write_run(dir: &Path, r: &RunResult<'_>, summary: &Summary) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let json = serde_json::to_string_pretty(summary)?;
    std::fs::write(dir.join("summary.json"), json + "\n")?;
    for k in Kind::ALL {
        let h = &r.total.hists[k as usize];
        if !h.is_empty() || k == r.primary {
            std::fs::write(dir.join(format!("{}.hgrm", k.name())), to_hgrm(h))?;
        }
    }
    std::fs::write(
        dir.join("timeline.csv"),
        timeline_csv(r.timeline, r.primary),
    )?;
    Ok(())
}

pub(crate) fn timeline_csv(rows: &[SecondRow], kind: Kind) -> String {
    let mut out = format!(
        "second,messages,mb_per_s,{k}_p50_us,{k}_p99_us,errors\n",
        k = kind.name()
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},{:.3},{},{},{}",
            r.second + 1,
            r.messages,
            r.bytes as f64 / 1e6,
            r.p50_us,
            r.p99_us,
            r.errors
        );
    }
    out
}

pub(crate) fn read_summary(dir: &Path) -> Result<Summary> {
    let path = dir.join("summary.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a riffle-loadgen summary", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_writes_summary_hgrm_and_timeline_that_read_back() {
        let mut total = Interval::new();
        total.produced.add(100, 100_000, false);
        total.produced.add(1000, 1_000_000, true);
        total.backlog_at_stop = 100;
        for v in 1..=1000 {
            total.hist(Kind::Produce).record(v * 10).unwrap();
        }
        let rows = vec![SecondRow {
            second: 0,
            messages: 1100,
            bytes: 1_100_000,
            p50_us: 5000,
            p99_us: 9900,
            errors: 0,
        }];
        let r = RunResult {
            workload: "produce",
            params: BTreeMap::from([("size".to_string(), serde_json::json!(1000))]),
            total: &total,
            timeline: &rows,
            primary: Kind::Produce,
            consumer_side: false,
            duration_s: 1.0,
            target_rate: 2000.0,
            notes: vec![],
        };
        let s = summarize(&r);
        assert_eq!(s.messages, 1000);
        assert_eq!(s.messages_total, 1100);
        assert!((s.mb_per_s - 1.0).abs() < 1e-9);
        assert!(!s.target_rate_met);
        assert!(s.notes[0].contains("NOT reached"));
        let l = s.latency_us;
        assert!(
            l.p50 <= l.p90
                && l.p90 <= l.p99
                && l.p99 <= l.p999
                && l.p999 <= l.p9999
                && l.p9999 <= l.max
        );
        let dir = tempfile::tempdir().unwrap();
        write_run(dir.path(), &r, &s).unwrap();
        let back = read_summary(dir.path()).unwrap();
        assert_eq!(back.messages, 1000);
        assert_eq!(back.latency_us, s.latency_us);
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("summary.json")).unwrap(),
        )
        .unwrap();
        for key in [
            "messages",
            "bytes",
            "duration_s",
            "msgs_per_s",
            "mb_per_s",
            "errors",
            "target_rate_met",
            "params",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        for key in ["p50", "p90", "p99", "p999", "p9999", "max"] {
            assert!(v["latency_us"].get(key).is_some(), "{key}");
        }
        assert!(dir.path().join("produce.hgrm").exists());
        assert!(!dir.path().join("e2e.hgrm").exists());
        let csv = std::fs::read_to_string(dir.path().join("timeline.csv")).unwrap();
        assert_eq!(csv.lines().count(), 2);
    }
}
