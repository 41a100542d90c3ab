//! Roll-by-age and retention decisions (sans-io): which whole segments go, Kafka's rules.

use crate::segment::Segment;
use crate::LogConfig;
use std::collections::VecDeque;

/// What the decisions need to know of a segment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SegmentStat {
    pub size: u64,
    /// Largest batch max timestamp, or the creation time for a segment without batches.
    pub newest_ms: i64,
    /// Time segment.ms is measured from.
    pub roll_base_ms: i64,
}

pub(crate) fn stats(segments: &VecDeque<Segment>) -> Vec<SegmentStat> {
    segments
        .iter()
        .map(|s| SegmentStat {
            size: s.size,
            newest_ms: s.index.max_timestamp().map_or(s.created_ms, |(ts, _)| ts),
            roll_base_ms: s.roll_base_ms(),
        })
        .collect()
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Roll the non-empty active segment when it is older than segment.ms, or when it is
/// past retention.ms (so that it can be deleted next, as Kafka does).
pub(crate) fn should_roll_active(config: &LogConfig, segs: &[SegmentStat], now_ms: i64) -> bool {
    let Some(active) = segs.last() else {
        return false;
    };
    if active.size == 0 {
        return false;
    }
    let by_age = config
        .segment_ms
        .is_some_and(|m| now_ms.saturating_sub(active.roll_base_ms) >= ms(m));
    let by_retention = config
        .retention_ms
        .is_some_and(|m| now_ms.saturating_sub(active.newest_ms) > ms(m));
    by_age || by_retention
}

/// Which retention limits a deletion enforces.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RetentionBy {
    /// Both, at this time (ms since the epoch): the periodic housekeeping.
    SizeAndTime(i64),
    /// retention.bytes alone: after a roll.
    Size,
}

/// How many of the oldest sealed segments retention deletes (the active one never).
pub(crate) fn segments_to_delete(
    config: &LogConfig,
    segs: &[SegmentStat],
    by: RetentionBy,
) -> usize {
    let sealed = segs.len().saturating_sub(1);
    let mut n = 0;
    if let (Some(m), RetentionBy::SizeAndTime(now_ms)) = (config.retention_ms, by) {
        while n < sealed && now_ms.saturating_sub(segs[n].newest_ms) > ms(m) {
            n += 1;
        }
    }
    if let Some(limit) = config.retention_bytes {
        let total: u64 = segs[n..].iter().map(|s| s.size).sum();
        let mut excess = total.saturating_sub(limit);
        while n < sealed && excess >= segs[n].size {
            excess -= segs[n].size;
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(size: u64, newest_ms: i64) -> SegmentStat {
        SegmentStat {
            size,
            newest_ms,
            roll_base_ms: newest_ms,
        }
    }

    #[test]
    fn retention_by_time_deletes_only_expired_sealed_segments() {
        let config = LogConfig {
            retention_ms: Some(100),
            retention_bytes: None,
            ..LogConfig::default()
        };
        let segs = [seg(10, 0), seg(10, 50), seg(10, 500), seg(10, 0)];
        assert_eq!(
            segments_to_delete(&config, &segs, RetentionBy::SizeAndTime(200)),
            2
        );
        assert_eq!(
            segments_to_delete(&config, &segs, RetentionBy::SizeAndTime(100)),
            0
        );
        // The active segment is never deleted, even when expired.
        assert_eq!(
            segments_to_delete(&config, &segs[..1], RetentionBy::SizeAndTime(10_000)),
            0
        );
    }

    #[test]
    fn retention_by_size_keeps_at_most_the_limit() {
        let config = LogConfig {
            retention_ms: None,
            retention_bytes: Some(25),
            ..LogConfig::default()
        };
        let segs = [seg(10, 0), seg(10, 0), seg(10, 0), seg(5, 0)];
        // total 35, excess 10: the oldest segment goes.
        assert_eq!(
            segments_to_delete(&config, &segs, RetentionBy::SizeAndTime(0)),
            1
        );
        let config = LogConfig {
            retention_bytes: Some(5),
            ..config
        };
        assert_eq!(
            segments_to_delete(&config, &segs, RetentionBy::SizeAndTime(0)),
            3
        );
    }

    #[test]
    fn retention_after_a_roll_ignores_the_time_limit() {
        let config = LogConfig {
            retention_ms: Some(100),
            retention_bytes: Some(25),
            ..LogConfig::default()
        };
        let segs = [seg(10, 0), seg(10, 0), seg(10, 0), seg(5, 0)];
        assert_eq!(segments_to_delete(&config, &segs, RetentionBy::Size), 1);
        assert_eq!(
            segments_to_delete(&config, &segs, RetentionBy::SizeAndTime(1000)),
            3
        );
    }

    #[test]
    fn roll_by_age_and_by_retention() {
        let config = LogConfig {
            segment_ms: Some(100),
            retention_ms: Some(1000),
            ..LogConfig::default()
        };
        assert!(!should_roll_active(&config, &[seg(10, 0)], 99));
        assert!(should_roll_active(&config, &[seg(10, 0)], 100));
        assert!(!should_roll_active(&config, &[seg(0, 0)], 10_000));
        let config = LogConfig {
            segment_ms: None,
            ..config
        };
        assert!(should_roll_active(&config, &[seg(10, 0)], 1001));
    }
}
