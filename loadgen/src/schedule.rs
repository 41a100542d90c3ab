//! Open-loop scheduling: message `k` of a producer is due at `start + offset + k / rate`,
//! whatever the broker does. Latency is measured from that intended time, so a stall shows
//! up in the histogram for every message it delayed (coordinated omission corrected).

use hdrhistogram::Histogram;

/// The send schedule of one producer, in nanoseconds since the run started.
#[derive(Debug, Clone)]
pub(crate) struct OpenLoop {
    /// Messages per second for this producer; 0 means flat out (no schedule).
    rate_per_s: f64,
    offset_ns: u64,
    /// Index of the next message not yet taken from the schedule.
    next_k: u64,
}

impl OpenLoop {
    pub(crate) fn new(rate_per_s: f64, offset_ns: u64) -> Self {
        assert!(rate_per_s >= 0.0 && rate_per_s.is_finite());
        OpenLoop {
            rate_per_s,
            offset_ns,
            next_k: 0,
        }
    }

    pub(crate) fn is_flat_out(&self) -> bool {
        self.rate_per_s == 0.0
    }

    /// Intended send time of message `k`.
    pub(crate) fn intended_ns(&self, k: u64) -> u64 {
        debug_assert!(!self.is_flat_out());
        self.offset_ns + (k as f64 * 1e9 / self.rate_per_s) as u64
    }

    /// Time between two messages (0 when flat out).
    pub(crate) fn period_ns(&self) -> f64 {
        if self.is_flat_out() {
            0.0
        } else {
            1e9 / self.rate_per_s
        }
    }

    /// When the next message is due (None when flat out: always due).
    pub(crate) fn next_due_ns(&self) -> Option<u64> {
        (!self.is_flat_out()).then(|| self.intended_ns(self.next_k))
    }

    /// How many messages are due at `now_ns` and not yet taken, capped at `max`.
    pub(crate) fn due(&self, now_ns: u64, max: u64) -> u64 {
        if self.is_flat_out() {
            return max;
        }
        self.count_intended_at_or_before(now_ns)
            .saturating_sub(self.next_k)
            .min(max)
    }

    /// How many messages the schedule holds before `t_ns`.
    pub(crate) fn scheduled_before(&self, t_ns: u64) -> u64 {
        if self.is_flat_out() || t_ns == 0 {
            return 0;
        }
        self.count_intended_at_or_before(t_ns - 1)
    }

    /// The number of messages intended at or before `t_ns`, exactly as `intended_ns` rounds
    /// (an estimate from the rate, corrected), so "due" and "intended" never disagree.
    fn count_intended_at_or_before(&self, t_ns: u64) -> u64 {
        if t_ns < self.offset_ns {
            return 0;
        }
        let mut n = ((t_ns - self.offset_ns) as f64 * self.rate_per_s / 1e9) as u64 + 1;
        while n > 0 && self.intended_ns(n - 1) > t_ns {
            n -= 1;
        }
        while self.intended_ns(n) <= t_ns {
            n += 1;
        }
        n
    }

    /// Takes the next message: its index.
    pub(crate) fn take(&mut self) -> u64 {
        let k = self.next_k;
        self.next_k += 1;
        k
    }

    /// Messages taken so far.
    #[cfg(test)]
    pub(crate) fn taken(&self) -> u64 {
        self.next_k
    }
}

/// The intended send times of a batch of messages: `count` messages, the first intended at
/// `first_ns`, then every `step_ns` (0 when flat out: all intended when the batch was built).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct IntendedTimes {
    pub first_ns: u64,
    pub step_ns: f64,
    pub count: u32,
}

/// Records, for each message of a batch completed at `done_ns`, the latency from its intended
/// time (µs) into `hist`; messages intended before `warmup_end_ns` are skipped.
/// Returns how many were recorded.
pub(crate) fn record_latencies(
    hist: &mut Histogram<u64>,
    times: IntendedTimes,
    done_ns: u64,
    warmup_end_ns: u64,
) -> u64 {
    let mut recorded = 0;
    for j in 0..times.count {
        let intended_ns = times.first_ns + (j as f64 * times.step_ns) as u64;
        if intended_ns < warmup_end_ns {
            continue;
        }
        let latency_us = done_ns.saturating_sub(intended_ns) / 1000;
        hist.saturating_record(latency_us.max(1));
        recorded += 1;
    }
    recorded
}

/// A histogram of µs latencies with 3 significant digits, up to one hour.
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn schedule_spaces_messages_at_the_rate() {
        let mut s = OpenLoop::new(1000.0, 0);
        assert_eq!(s.due(0, u64::MAX), 1);
        assert_eq!(s.due(MS / 2, u64::MAX), 1);
        assert_eq!(s.due(10 * MS, u64::MAX), 11);
        assert_eq!(s.due(10 * MS, 4), 4);
        for _ in 0..11 {
            s.take();
        }
        assert_eq!(s.due(10 * MS, u64::MAX), 0);
        assert_eq!(s.next_due_ns(), Some(11 * MS));
        assert_eq!(s.intended_ns(1000), 1000 * MS);
        assert_eq!(s.scheduled_before(10 * MS), 10);
        assert_eq!(s.scheduled_before(10 * MS + 1), 11);
        assert_eq!(s.scheduled_before(0), 0);
    }

    #[test]
    fn due_and_intended_agree_at_any_rate() {
        // A producer takes everything due just before its stop; the next message must then be
        // intended at or after the stop, or the run would wait for it forever. These rates and
        // offsets (bench/run's per-producer rates) broke a formula computed apart from
        // `intended_ns`.
        for rate in [
            35_791.75,
            34_521.5,
            26_992.25,
            42_618.75,
            333.333,
            7.0,
            1e6 / 3.0,
        ] {
            for offset_ns in [0, 123, 5_865, 6_984, 9_261, 13_969, 14_483, 20_954, 27_785] {
                for stop_ns in [
                    1_000_000_007u64,
                    3_000_000_000,
                    10_000_000_000,
                    13_000_000_000,
                ] {
                    let s = OpenLoop::new(rate, offset_ns);
                    let n = s.due(stop_ns - 1, u64::MAX);
                    assert_eq!(n, s.scheduled_before(stop_ns));
                    assert!(
                        s.intended_ns(n) >= stop_ns,
                        "rate {rate} offset {offset_ns} stop {stop_ns}"
                    );
                    assert!(n == 0 || s.intended_ns(n - 1) < stop_ns);
                }
            }
        }
        let mut s = OpenLoop::new(35_791.75, 6_984);
        while s.due(3_000_000_000 - 1, 1) == 1 {
            s.take();
        }
        assert!(s.next_due_ns().unwrap() >= 3_000_000_000);
    }

    #[test]
    fn schedule_offset_delays_the_first_message() {
        let s = OpenLoop::new(100.0, 5 * MS);
        assert_eq!(s.due(4 * MS, u64::MAX), 0);
        assert_eq!(s.due(5 * MS, u64::MAX), 1);
        assert_eq!(s.next_due_ns(), Some(5 * MS));
    }

    #[test]
    fn flat_out_is_always_due() {
        let s = OpenLoop::new(0.0, 0);
        assert!(s.is_flat_out());
        assert_eq!(s.due(0, 7), 7);
        assert_eq!(s.next_due_ns(), None);
    }

    /// A sender that takes due messages every millisecond, except during a 500 ms stall of
    /// the "broker", each acknowledged 1 ms after it was sent.
    fn simulate_stall(measure_from_intended: bool) -> Histogram<u64> {
        let mut s = OpenLoop::new(1000.0, 0);
        let mut hist = new_histogram();
        let stall = 1000 * MS..1500 * MS;
        let mut now = 0;
        while now < 3000 * MS {
            if !stall.contains(&now) {
                let n = s.due(now, u64::MAX);
                let first_k = s.taken();
                for _ in 0..n {
                    s.take();
                }
                if n > 0 {
                    let times = if measure_from_intended {
                        IntendedTimes {
                            first_ns: s.intended_ns(first_k),
                            step_ns: s.period_ns(),
                            count: n as u32,
                        }
                    } else {
                        IntendedTimes {
                            first_ns: now,
                            step_ns: 0.0,
                            count: n as u32,
                        }
                    };
                    record_latencies(&mut hist, times, now + MS, 0);
                }
            }
            now += MS;
        }
        hist
    }

    #[test]
    fn stall_appears_in_histogram_measured_from_intended_time() {
        let hist = simulate_stall(true);
        assert_eq!(hist.len(), 3000);
        // 500 messages were delayed by the stall: up to ~500 ms, uniformly.
        assert!(hist.max() >= 499_000, "max {}", hist.max());
        assert!(hist.value_at_quantile(0.9) >= 200_000);
        assert!(hist.value_at_quantile(0.5) <= 2_000);
        let over_250ms: u64 = hist
            .iter_recorded()
            .filter(|v| v.value_iterated_to() > 250_000)
            .map(|v| v.count_at_value())
            .sum();
        assert!((240..=260).contains(&over_250ms), "{over_250ms}");
    }

    #[test]
    fn naive_send_time_measurement_hides_the_stall() {
        // The control: measuring from the actual send hides it (coordinated omission).
        let hist = simulate_stall(false);
        assert!(hist.max() <= 2_000, "max {}", hist.max());
    }

    #[test]
    fn warmup_messages_are_not_recorded() {
        let mut hist = new_histogram();
        let times = IntendedTimes {
            first_ns: 0,
            step_ns: MS as f64,
            count: 10,
        };
        assert_eq!(record_latencies(&mut hist, times, 20 * MS, 5 * MS), 5);
        assert_eq!(hist.len(), 5);
        assert_eq!(hist.max() / 1000, 15);
    }
}
