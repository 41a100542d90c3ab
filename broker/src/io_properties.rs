//! Sizes the settings that depend on the disk from `io-properties.toml`, which
//! `riffle-tune iotune --dir DATA_DIR` writes into the data dir. Only what the measurements
//! honestly say is used, and a key set in the config file always wins over them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{BrokerConfig, LOG_WRITE_BEHIND_DEPTH_MAX};

pub(crate) const FILE_NAME: &str = "io-properties.toml";
/// More sync threads than this per shard only add context switches, whatever the disk says.
const SYNC_THREADS_PER_SHARD_MAX: usize = 16;

#[derive(Debug, thiserror::Error)]
pub(crate) enum IoPropertiesError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path} (re-run riffle-tune iotune, or delete it): {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{path}: {what} must be at least 1")]
    Invalid { path: PathBuf, what: &'static str },
}

/// The part of the file the broker reads; the measurements themselves are for people.
#[derive(Deserialize)]
struct IoProperties {
    recommended: Recommended,
}

#[derive(Deserialize)]
struct Recommended {
    /// 256 KiB writes in flight past which one stream's sequential bandwidth stops growing.
    write_behind_depth: usize,
    /// Concurrent fdatasyncs (on different files) past which syncs per second stop growing.
    fdatasync_parallelism: usize,
}

/// The keys given in the config file, which io-properties must not override.
pub(crate) fn explicit_keys(config_file: Option<&Path>) -> BTreeSet<String> {
    config_file
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| text.parse::<toml::Table>().ok())
        .map(|table| table.keys().cloned().collect())
        .unwrap_or_default()
}

/// Sizes `config` from its data dir's io-properties.toml at start-up, for the shards this
/// process will run, and logs what changed.
pub(crate) fn size_from_data_dir(
    config: &mut BrokerConfig,
    config_file: Option<&Path>,
) -> Result<(), IoPropertiesError> {
    let shards = match config.smp {
        0 => crate::server::allowed_cpus().len().max(1),
        n => n,
    };
    for change in apply(config, &explicit_keys(config_file), shards)? {
        tracing::info!("{FILE_NAME}: {change}");
    }
    Ok(())
}

/// Reads `DATA_DIR/io-properties.toml` if there is one and sizes `config` from it for `shards`
/// shards. Returns one line per setting changed, for the log.
pub(crate) fn apply(
    config: &mut BrokerConfig,
    explicit: &BTreeSet<String>,
    shards: usize,
) -> Result<Vec<String>, IoPropertiesError> {
    let path = config.data_dir.join(FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(IoPropertiesError::Read { path, source }),
    };
    let props: IoProperties = toml::from_str(&text).map_err(|source| IoPropertiesError::Parse {
        path: path.clone(),
        source,
    })?;
    let Recommended {
        write_behind_depth,
        fdatasync_parallelism: parallelism,
    } = props.recommended;
    for (value, what) in [
        (parallelism, "recommended.fdatasync_parallelism"),
        (write_behind_depth, "recommended.write_behind_depth"),
    ] {
        if value == 0 {
            return Err(IoPropertiesError::Invalid { path, what });
        }
    }
    let mut changes = Vec::new();
    if !explicit.contains("log_write_behind_depth") {
        let depth = write_behind_depth.min(LOG_WRITE_BEHIND_DEPTH_MAX);
        if depth != config.log_write_behind_depth {
            changes.push(format!(
                "log_write_behind_depth {} -> {depth} (disk: sequential writes stop gaining at {write_behind_depth} in flight)",
                config.log_write_behind_depth
            ));
            config.log_write_behind_depth = depth;
        }
    }
    if !explicit.contains("sync_threads_per_shard") {
        // The disk gains from `parallelism` syncs at once; the shards' pools share it.
        let per_shard = parallelism
            .div_ceil(shards.max(1))
            .clamp(1, SYNC_THREADS_PER_SHARD_MAX);
        if per_shard != config.sync_threads_per_shard {
            changes.push(format!(
                "sync_threads_per_shard {} -> {per_shard} (disk: {parallelism} parallel fdatasyncs, {shards} shards)",
                config.sync_threads_per_shard
            ));
            config.sync_threads_per_shard = per_shard;
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_in(dir: &Path, properties: Option<&str>) -> BrokerConfig {
        if let Some(text) = properties {
            std::fs::write(dir.join(FILE_NAME), text).unwrap();
        }
        BrokerConfig {
            data_dir: dir.to_path_buf(),
            ..BrokerConfig::default()
        }
    }

    const MEASURED: &str = "# Written by riffle-tune iotune\n[disk]\ndir = \"/d\"\n\n\
        [recommended]\nwrite_behind_depth = 16\nfdatasync_parallelism = 8\n\n\
        [[seq_write]]\nblock_bytes = 4096\nqueue_depth = 1\nmb_per_s = 10.0\n";

    #[test]
    fn sync_threads_follow_the_measured_parallelism_per_shard() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config_in(dir.path(), Some(MEASURED));
        let changes = apply(&mut cfg, &BTreeSet::new(), 4).unwrap();
        assert_eq!(cfg.sync_threads_per_shard, 2);
        assert_eq!(cfg.log_write_behind_depth, 16);
        assert_eq!(changes.len(), 2);
        assert!(
            changes[0].starts_with("log_write_behind_depth 4 -> 16"),
            "{changes:?}"
        );
        assert!(
            changes[1].starts_with("sync_threads_per_shard 4 -> 2"),
            "{changes:?}"
        );
        let mut cfg = config_in(dir.path(), None);
        apply(&mut cfg, &BTreeSet::new(), 3).unwrap();
        assert_eq!(
            cfg.sync_threads_per_shard, 3,
            "8 syncs over 3 shards rounds up"
        );
    }

    #[test]
    fn a_key_in_the_config_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        let config_file = dir.path().join("riffle.toml");
        std::fs::write(&config_file, "sync_threads_per_shard = 6\n").unwrap();
        let explicit = explicit_keys(Some(&config_file));
        assert!(explicit.contains("sync_threads_per_shard"));
        let mut cfg = config_in(dir.path(), Some(MEASURED));
        cfg.sync_threads_per_shard = 6;
        let changes = apply(&mut cfg, &explicit, 1).unwrap();
        assert_eq!(cfg.sync_threads_per_shard, 6);
        assert_eq!(changes.len(), 1, "only the depth: {changes:?}");
        std::fs::write(&config_file, "log_write_behind_depth = 2\n").unwrap();
        let explicit = explicit_keys(Some(&config_file));
        let mut cfg = config_in(dir.path(), None);
        cfg.log_write_behind_depth = 2;
        apply(&mut cfg, &explicit, 1).unwrap();
        assert_eq!(
            (cfg.log_write_behind_depth, cfg.sync_threads_per_shard),
            (2, 8)
        );
    }

    #[test]
    fn no_file_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config_in(dir.path(), None);
        assert!(apply(&mut cfg, &BTreeSet::new(), 2).unwrap().is_empty());
        assert_eq!(cfg.sync_threads_per_shard, 4);
        assert_eq!(cfg.log_write_behind_depth, 4);
        assert!(explicit_keys(None).is_empty());
    }

    #[test]
    fn a_bad_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config_in(
            dir.path(),
            Some("[recommended]\nfdatasync_parallelism = \"x\"\n"),
        );
        let err = apply(&mut cfg, &BTreeSet::new(), 2)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(FILE_NAME) && err.contains("re-run riffle-tune"),
            "{err}"
        );
        let mut cfg = config_in(
            dir.path(),
            Some("[recommended]\nwrite_behind_depth = 4\nfdatasync_parallelism = 0\n"),
        );
        let err = apply(&mut cfg, &BTreeSet::new(), 2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 1"), "{err}");
    }

    #[test]
    fn many_shards_get_one_thread_and_a_huge_figure_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let small = "[recommended]\nwrite_behind_depth = 1\nfdatasync_parallelism = 2\n";
        let mut cfg = config_in(dir.path(), Some(small));
        apply(&mut cfg, &BTreeSet::new(), 64).unwrap();
        assert_eq!(
            (cfg.sync_threads_per_shard, cfg.log_write_behind_depth),
            (1, 1)
        );
        let huge = "[recommended]\nwrite_behind_depth = 999\nfdatasync_parallelism = 1000\n";
        let mut cfg = config_in(dir.path(), Some(huge));
        apply(&mut cfg, &BTreeSet::new(), 1).unwrap();
        assert_eq!(cfg.sync_threads_per_shard, SYNC_THREADS_PER_SHARD_MAX);
        assert_eq!(cfg.log_write_behind_depth, LOG_WRITE_BEHIND_DEPTH_MAX);
        assert!(cfg.validate().is_ok());
    }
}
