//! Measurement plumbing: each worker thread fills an `Interval` and hands it to the main
//! thread once a second; the main thread merges them into the per-second timeline, the run
//! totals and the live progress line.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::schedule::new_histogram;

/// Kinds of latency a run measures, each its own histogram and `.hgrm` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Intended send time → produce acknowledgement.
    Produce,
    /// Fetch request sent → fetch response received.
    Fetch,
    /// Intended send time (carried in the payload) → consumer receipt.
    E2e,
}

impl Kind {
    pub(crate) const ALL: [Kind; 3] = [Kind::Produce, Kind::Fetch, Kind::E2e];
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Produce => "produce",
            Kind::Fetch => "fetch",
            Kind::E2e => "e2e",
        }
    }
}

/// Messages and payload bytes; `messages`/`bytes` exclude the warm-up, the `_total` ones not.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Counter {
    pub messages: u64,
    pub bytes: u64,
    pub messages_total: u64,
    pub bytes_total: u64,
}

impl Counter {
    pub(crate) fn add(&mut self, messages: u64, bytes: u64, measured: bool) {
        self.messages_total += messages;
        self.bytes_total += bytes;
        if measured {
            self.messages += messages;
            self.bytes += bytes;
        }
    }
    fn merge(&mut self, o: &Counter) {
        self.messages += o.messages;
        self.bytes += o.bytes;
        self.messages_total += o.messages_total;
        self.bytes_total += o.bytes_total;
    }
}

/// What one worker measured during one second (or the whole run, once merged).
#[derive(Debug, Clone)]
pub(crate) struct Interval {
    pub hists: [Histogram<u64>; 3],
    pub produced: Counter,
    pub consumed: Counter,
    pub errors: u64,
    /// Messages scheduled before the stop but not yet acknowledged then (the producers
    /// were behind the target rate; they are still sent and measured).
    pub backlog_at_stop: u64,
    /// First few error descriptions, for the summary.
    pub error_samples: Vec<String>,
    /// Events worth a line in the summary's notes (a consumer group assignment).
    pub notes: Vec<String>,
}

/// How many distinct error descriptions a run keeps.
const ERROR_SAMPLES_MAX: usize = 10;
/// How many notes from the workers a run keeps.
const NOTES_MAX: usize = 64;

impl Interval {
    pub(crate) fn new() -> Self {
        Interval {
            hists: [new_histogram(), new_histogram(), new_histogram()],
            produced: Counter::default(),
            consumed: Counter::default(),
            errors: 0,
            backlog_at_stop: 0,
            error_samples: Vec::new(),
            notes: Vec::new(),
        }
    }
    pub(crate) fn hist(&mut self, kind: Kind) -> &mut Histogram<u64> {
        &mut self.hists[kind as usize]
    }
    pub(crate) fn error(&mut self, what: String) {
        self.errors += 1;
        if self.error_samples.len() < ERROR_SAMPLES_MAX && !self.error_samples.contains(&what) {
            self.error_samples.push(what);
        }
    }
    pub(crate) fn note(&mut self, what: String) {
        if self.notes.len() < NOTES_MAX {
            self.notes.push(what);
        }
    }
    pub(crate) fn merge(&mut self, o: &Interval) {
        for (a, b) in self.hists.iter_mut().zip(o.hists.iter()) {
            a.add(b).expect("histograms share bounds");
        }
        self.produced.merge(&o.produced);
        self.consumed.merge(&o.consumed);
        self.errors += o.errors;
        self.backlog_at_stop += o.backlog_at_stop;
        for e in &o.error_samples {
            if self.error_samples.len() < ERROR_SAMPLES_MAX && !self.error_samples.contains(e) {
                self.error_samples.push(e.clone());
            }
        }
        for n in &o.notes {
            self.note(n.clone());
        }
    }
}

/// A message from a worker thread to the main thread.
pub(crate) enum Report {
    /// Second `second` of the run (counted from the start, warm-up included) is over.
    Second { second: u64, interval: Interval },
    /// The worker stopped; `interval` holds what it measured since its last report.
    Done { interval: Interval },
}

/// One row of the per-second timeline.
#[derive(Debug, Clone)]
pub(crate) struct SecondRow {
    pub second: u64,
    pub messages: u64,
    pub bytes: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub errors: u64,
}

/// Collects the workers' reports until all are done; prints progress unless `quiet`.
pub(crate) struct Collector {
    pub total: Interval,
    pub timeline: Vec<SecondRow>,
    /// Which counter and histogram the progress line and timeline show.
    pub primary: Kind,
    pub consumer_side: bool,
    pub quiet: bool,
    pub warmup_s: f64,
}

impl Collector {
    /// `started` is the run clock's start: a second's row is printed once every worker
    /// reported it, or a second after it ended (a late report still counts in its row).
    pub(crate) fn run(
        &mut self,
        rx: Receiver<Report>,
        workers: usize,
        started: Instant,
        deadline: Instant,
    ) {
        let mut pending: BTreeMap<u64, (usize, Interval)> = BTreeMap::new();
        let mut done = 0;
        while done < workers {
            let wait = deadline.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                eprintln!(
                    "riffle-loadgen: workers did not stop in time; reporting what was measured"
                );
                break;
            }
            match rx.recv_timeout(wait.min(Duration::from_millis(250))) {
                Ok(Report::Second { second, interval }) => {
                    self.total.merge(&interval);
                    if let Some(row) = self.timeline.iter_mut().find(|r| r.second == second) {
                        let c = if self.consumer_side {
                            interval.consumed
                        } else {
                            interval.produced
                        };
                        row.messages += c.messages_total;
                        row.bytes += c.bytes_total;
                        row.errors += interval.errors;
                    } else {
                        let slot = pending
                            .entry(second)
                            .or_insert_with(|| (0, Interval::new()));
                        slot.0 += 1;
                        slot.1.merge(&interval);
                    }
                }
                Ok(Report::Done { interval }) => {
                    self.total.merge(&interval);
                    done += 1;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let elapsed = started.elapsed();
            while let Some((&s, (n, _))) = pending.iter().next() {
                let overdue = elapsed > Duration::from_secs(s + 2);
                if *n >= workers || done == workers || overdue {
                    let (_, iv) = pending.remove(&s).expect("present");
                    self.row(s, &iv);
                } else {
                    break;
                }
            }
        }
        for (s, (_, iv)) in std::mem::take(&mut pending) {
            self.row(s, &iv);
        }
    }

    fn row(&mut self, second: u64, iv: &Interval) {
        let c = if self.consumer_side {
            iv.consumed
        } else {
            iv.produced
        };
        let h = &iv.hists[self.primary as usize];
        let row = SecondRow {
            second,
            messages: c.messages_total,
            bytes: c.bytes_total,
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            errors: iv.errors,
        };
        if !self.quiet {
            let warm = if (second as f64) < self.warmup_s {
                " (warm-up)"
            } else {
                ""
            };
            eprintln!(
                "[{:>4}s] {:>9} msg/s {:>8.2} MB/s  {} p50 {:>8.3} ms  p99 {:>8.3} ms  errors {}{}",
                second + 1,
                row.messages,
                row.bytes as f64 / 1e6,
                self.primary.name(),
                row.p50_us as f64 / 1000.0,
                row.p99_us as f64 / 1000.0,
                row.errors,
                warm
            );
        }
        self.timeline.push(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_keeps_warmup_out_of_the_measured_figures() {
        let mut c = Counter::default();
        c.add(10, 100, false);
        c.add(5, 50, true);
        assert_eq!((c.messages, c.bytes), (5, 50));
        assert_eq!((c.messages_total, c.bytes_total), (15, 150));
    }

    #[test]
    fn collector_merges_seconds_from_all_workers() {
        let (tx, rx) = std::sync::mpsc::channel();
        for w in 0..2u64 {
            for s in 0..3u64 {
                let mut iv = Interval::new();
                iv.produced.add(10 + w, 1000, s >= 1);
                iv.hist(Kind::Produce).record(100 * (s + 1)).unwrap();
                tx.send(Report::Second {
                    second: s,
                    interval: iv,
                })
                .unwrap();
            }
            let mut iv = Interval::new();
            iv.error("boom".into());
            tx.send(Report::Done { interval: iv }).unwrap();
        }
        let mut c = Collector {
            total: Interval::new(),
            timeline: vec![],
            primary: Kind::Produce,
            consumer_side: false,
            quiet: true,
            warmup_s: 1.0,
        };
        c.run(
            rx,
            2,
            Instant::now(),
            Instant::now() + Duration::from_secs(5),
        );
        assert_eq!(c.timeline.len(), 3);
        assert!(c.timeline.iter().all(|r| r.messages == 21));
        assert_eq!(c.total.produced.messages, 42);
        assert_eq!(c.total.produced.messages_total, 63);
        assert_eq!(c.total.errors, 2);
        assert_eq!(c.total.error_samples, vec!["boom".to_string()]);
        assert_eq!(c.total.hists[0].len(), 6);
    }
}
