//! The figures iotune measured, the settings derived from them, and `io-properties.toml`, the
//! file `riffle serve` reads from its data dir. Derivations are pure functions of the figures.

use serde::Serialize;

/// A measured figure is "as good as the best" within this share of it: more depth or more
/// threads beyond that point only add queueing.
const SATURATION_SHARE: f64 = 0.9;
/// The storage writes behind in chunks of this size (storage's CHUNK_BYTES), so the write-behind
/// depth is read off the sequential writes of this block size.
pub(crate) const WRITE_BEHIND_CHUNK_BYTES: usize = 256 << 10;

#[derive(Serialize, Debug, Clone)]
pub(crate) struct Bandwidth {
    pub block_bytes: usize,
    pub queue_depth: usize,
    pub mb_per_s: f64,
}

#[derive(Serialize, Debug, Clone)]
pub(crate) struct RandomRead {
    pub block_bytes: usize,
    pub queue_depth: usize,
    pub iops: f64,
}

#[derive(Serialize, Debug, Clone)]
pub(crate) struct SyncLatency {
    /// "pre-written" (overwrites of written blocks) or "new" (appends that allocate blocks).
    pub blocks: &'static str,
    pub append_bytes: usize,
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
}

#[derive(Serialize, Debug, Clone)]
pub(crate) struct SyncParallel {
    /// Threads, each appending 4 KiB to its own file and fdatasyncing it, as the broker's sync
    /// pool does.
    pub threads: usize,
    pub syncs_per_s: f64,
    pub p50_us: u64,
}

/// What `riffle serve` sizes from the figures (see the README's "Tuning a server").
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recommended {
    /// 256 KiB writes in flight past which sequential write bandwidth stops growing.
    pub write_behind_depth: usize,
    /// Concurrent fdatasyncs (on different files) past which syncs per second stop growing.
    pub fdatasync_parallelism: usize,
}

#[derive(Serialize, Debug, Clone)]
pub(crate) struct Disk {
    pub dir: String,
    pub measured_unix_s: u64,
    pub duration_ms: u64,
    pub file_bytes: u64,
}

#[derive(Serialize, Debug, Clone)]
pub(crate) struct IoProperties {
    pub disk: Disk,
    pub recommended: Recommended,
    pub seq_write: Vec<Bandwidth>,
    pub seq_read: Vec<Bandwidth>,
    pub random_read: Vec<RandomRead>,
    pub fdatasync: Vec<SyncLatency>,
    pub fdatasync_parallel: Vec<SyncParallel>,
}

impl IoProperties {
    pub(crate) fn to_toml(&self) -> Result<String, toml::ser::Error> {
        let header = "# Written by riffle-tune iotune: the disk under `disk.dir`, measured with io_uring\n\
                      # and O_DIRECT. `riffle serve` reads [recommended] from its data dir; a setting\n\
                      # given in the broker's config wins. Re-run iotune after changing the disk.\n\n";
        Ok(format!("{header}{}", toml::to_string(self)?))
    }
}

/// The smallest `x` whose `y` reaches SATURATION_SHARE of the best `y`; `None` if no point
/// has a positive figure.
pub(crate) fn knee(points: &[(usize, f64)]) -> Option<usize> {
    let best = points.iter().map(|p| p.1).fold(0.0, f64::max);
    if best <= 0.0 {
        return None;
    }
    points
        .iter()
        .filter(|p| p.1 >= best * SATURATION_SHARE)
        .map(|p| p.0)
        .min()
}

pub(crate) fn recommend(seq_write: &[Bandwidth], parallel: &[SyncParallel]) -> Recommended {
    let chunk: Vec<(usize, f64)> = seq_write
        .iter()
        .filter(|b| b.block_bytes == WRITE_BEHIND_CHUNK_BYTES)
        .map(|b| (b.queue_depth, b.mb_per_s))
        .collect();
    let syncs: Vec<(usize, f64)> = parallel
        .iter()
        .map(|p| (p.threads, p.syncs_per_s))
        .collect();
    Recommended {
        write_behind_depth: knee(&chunk).unwrap_or(1),
        fdatasync_parallelism: knee(&syncs).unwrap_or(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knee_is_the_smallest_point_near_the_best() {
        assert_eq!(knee(&[(1, 100.0), (4, 380.0), (16, 400.0)]), Some(4));
        assert_eq!(knee(&[(1, 400.0), (4, 390.0), (16, 395.0)]), Some(1));
        assert_eq!(knee(&[(1, 10.0), (4, 20.0), (16, 400.0)]), Some(16));
        assert_eq!(knee(&[(1, 0.0)]), None);
        assert_eq!(knee(&[]), None);
    }

    #[test]
    fn recommendations_come_from_256k_writes_and_parallel_syncs() {
        let bw = |block_bytes, queue_depth, mb_per_s| Bandwidth {
            block_bytes,
            queue_depth,
            mb_per_s,
        };
        let seq = [
            bw(4096, 16, 900.0),
            bw(256 << 10, 1, 300.0),
            bw(256 << 10, 4, 1000.0),
            bw(256 << 10, 16, 1050.0),
        ];
        let par = |threads, syncs_per_s| SyncParallel {
            threads,
            syncs_per_s,
            p50_us: 100,
        };
        let syncs = [
            par(1, 2000.0),
            par(2, 3900.0),
            par(4, 7000.0),
            par(8, 7200.0),
        ];
        let r = recommend(&seq, &syncs);
        assert_eq!(
            r,
            Recommended {
                write_behind_depth: 4,
                fdatasync_parallelism: 4
            }
        );
        assert_eq!(recommend(&[], &[]).write_behind_depth, 1);
    }

    #[test]
    fn the_file_starts_with_a_comment_and_has_the_recommended_table() {
        let props = IoProperties {
            disk: Disk {
                dir: "/d".into(),
                measured_unix_s: 1,
                duration_ms: 2,
                file_bytes: 3,
            },
            recommended: Recommended {
                write_behind_depth: 4,
                fdatasync_parallelism: 2,
            },
            seq_write: vec![],
            seq_read: vec![],
            random_read: vec![],
            fdatasync: vec![],
            fdatasync_parallel: vec![],
        };
        let text = props.to_toml().unwrap();
        assert!(text.starts_with("# Written by riffle-tune iotune"));
        let back: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(
            back["recommended"]["write_behind_depth"].as_integer(),
            Some(4)
        );
        assert_eq!(
            back["recommended"]["fdatasync_parallelism"].as_integer(),
            Some(2)
        );
    }
}
