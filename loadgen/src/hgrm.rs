//! Writes and reads HdrHistogram's percentile-distribution text format (`.hgrm`), the one
//! `outputPercentileDistribution` prints and HdrHistogram's plotter reads. Values are
//! recorded in µs and written in milliseconds.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// Recorded values are µs; the file shows milliseconds.
const VALUE_SCALE: f64 = 1000.0;
const TICKS_PER_HALF_DISTANCE: u32 = 5;

pub(crate) fn to_hgrm(hist: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !hist.is_empty() {
        let mut total: u64 = 0;
        for v in hist.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total += v.count_since_last_iteration();
            let value = hist.highest_equivalent(v.value_iterated_to()) as f64 / VALUE_SCALE;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{:>12.3} {:>2.12} {:>10} {:>14.2}",
                    value,
                    q,
                    total,
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{:>12.3} {:>2.12} {:>10}", value, q, total);
            }
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        hist.mean() / VALUE_SCALE,
        hist.stdev() / VALUE_SCALE
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        hist.max() as f64 / VALUE_SCALE,
        hist.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        hist.buckets(),
        sub_buckets_of(hist)
    );
    out
}

/// HdrHistogram's sub-bucket count: the smallest power of two holding 2 * 10^digits.
fn sub_buckets_of(hist: &Histogram<u64>) -> u64 {
    let largest = 2 * 10u64.pow(hist.sigfig() as u32);
    largest.next_power_of_two()
}

/// (percentile 0..1, value in ms) points of a `.hgrm` file, for charts.
pub(crate) fn parse_hgrm(text: &str) -> Vec<(f64, f64)> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let value: f64 = it.next()?.parse().ok()?;
            let q: f64 = it.next()?.parse().ok()?;
            Some((q, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::new_histogram;

    #[test]
    fn hgrm_has_the_standard_table_and_footer() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        let text = to_hgrm(&h);
        let first = text.lines().next().unwrap();
        assert!(first.contains("Value") && first.contains("1/(1-Percentile)"));
        assert!(text.contains("#[Mean    ="));
        assert!(text.contains("Total count    =        10000]"));
        assert!(text.contains("SubBuckets     =         2048]"));
        let points = parse_hgrm(&text);
        assert!(points.len() > 20);
        assert_eq!(points[0].0, 0.0);
        assert_eq!(points.last().unwrap().0, 1.0);
        // Monotonic in both columns; the median close to 5 ms.
        assert!(points
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        let median = points.iter().find(|p| p.0 >= 0.5).unwrap().1;
        assert!((4.9..=5.1).contains(&median), "{median}");
        // Total count column ends at the total.
        let last_line = text.lines().rev().find(|l| !l.starts_with('#')).unwrap();
        assert!(last_line.trim_end().ends_with("10000"));
        assert!((points.last().unwrap().1 - 10.0).abs() < 0.02);
    }

    #[test]
    fn empty_histogram_writes_only_header_and_footer() {
        let text = to_hgrm(&new_histogram());
        assert!(parse_hgrm(&text).is_empty());
        assert!(text.contains("Total count    =            0]"));
    }
}
