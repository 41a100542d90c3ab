//! When a partition whose log failed (a write or fdatasync error: full disk, EIO) may be opened
//! again. The failed log is never written again (after a failed fdatasync the state of its pages
//! is unknown): the partition is closed, refused meanwhile, and reopened from what is durable,
//! at most once per back-off. Sans-io: time is passed in.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A partition whose log is offline, kept by its shard slot until a reopen succeeds.
/// Shard-local, lives from the failure to the reopen that works (or the topic's deletion).
#[derive(Debug, Clone)]
pub struct OfflineLog {
    /// The high watermark when the log failed: everything below it was fdatasync'd and may have
    /// been acknowledged or served; what lies past it on disk never was, and is cut at reopen.
    pub durable_end: i64,
    /// The partition's directory (removed if its topic is deleted while offline).
    pub dir: PathBuf,
    /// Why the log, or its last reopen, failed.
    pub reason: String,
    /// No reopen before this instant.
    retry_at: Instant,
}

impl OfflineLog {
    /// The log failed at `now`: the first reopen waits `backoff`.
    pub fn failed(
        durable_end: i64,
        dir: PathBuf,
        reason: String,
        now: Instant,
        backoff: Duration,
    ) -> OfflineLog {
        OfflineLog {
            durable_end,
            dir,
            reason,
            retry_at: now + backoff,
        }
    }

    /// Whether a request at `now` may try to reopen the log.
    pub fn may_reopen(&self, now: Instant) -> bool {
        now >= self.retry_at
    }

    /// How long a request at `now` still waits for the next reopen.
    pub fn retry_in(&self, now: Instant) -> Duration {
        self.retry_at.saturating_duration_since(now)
    }

    /// The reopen tried at `now` failed with `reason`: the next waits `backoff` again. The cut
    /// point stays: nothing became durable meanwhile.
    pub fn reopen_failed(&mut self, reason: String, now: Instant, backoff: Duration) {
        self.reason = reason;
        self.retry_at = now + backoff;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Duration = Duration::from_millis(1000);

    #[test]
    fn a_failed_log_is_reopened_only_after_the_backoff() {
        let t0 = Instant::now();
        let offline = OfflineLog::failed(42, PathBuf::from("t-0"), "disk full".into(), t0, BACKOFF);
        assert!(!offline.may_reopen(t0));
        assert!(!offline.may_reopen(t0 + BACKOFF - Duration::from_millis(1)));
        assert_eq!(
            offline.retry_in(t0 + Duration::from_millis(400)),
            Duration::from_millis(600)
        );
        assert!(offline.may_reopen(t0 + BACKOFF));
        assert_eq!(offline.retry_in(t0 + 2 * BACKOFF), Duration::ZERO);
    }

    #[test]
    fn a_failed_reopen_backs_off_again_and_keeps_the_cut_point() {
        let t0 = Instant::now();
        let mut offline =
            OfflineLog::failed(42, PathBuf::from("t-0"), "disk full".into(), t0, BACKOFF);
        let t1 = t0 + BACKOFF;
        offline.reopen_failed("too many open files".into(), t1, BACKOFF);
        assert!(!offline.may_reopen(t1));
        assert!(!offline.may_reopen(t1 + BACKOFF / 2));
        assert!(offline.may_reopen(t1 + BACKOFF));
        assert_eq!(offline.durable_end, 42);
        assert_eq!(offline.reason, "too many open files");
    }
}
