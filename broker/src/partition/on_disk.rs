//! A partition's directory: `{topic}-{index}` as Kafka names it, marked with the id of the topic
//! that owns it (`partition.metadata`, Kafka's file and format). A topic deleted and created again
//! under the same name has a new id, so files a crash or a failed removal left behind are never
//! served as the new topic's: opening removes them, and start-up removes every partition
//! directory of a topic that is no longer in the metadata.

use std::io;
use std::path::{Path, PathBuf};

use riffle_protocol::Uuid;
use riffle_storage::StorageError;

use crate::metadata::image::MetadataImage;

/// Kafka's per-partition metadata file: its format version and the owning topic's id.
const PARTITION_METADATA_FILE: &str = "partition.metadata";

/// Entries of the data dir that are not partition directories (the committed offsets, the
/// controller quorum's Raft log and the shards' commit logs; a partition's is always
/// `{topic}-{index}`, so these names can never be one).
const NOT_PARTITIONS: &[&str] = &[
    "__consumer_offsets",
    crate::cluster::CONTROLLER_DIR,
    super::commit_log::DIR_NAME,
];

pub fn partition_dir(data_dir: &Path, topic: &str, index: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{index}"))
}

fn metadata_text(topic_id: [u8; 16]) -> String {
    format!("version: 0\ntopic_id: {}\n", Uuid(topic_id))
}

/// The topic id a partition directory is marked with, if it is marked.
fn marked_topic_id(dir: &Path) -> io::Result<Option<String>> {
    match std::fs::read_to_string(dir.join(PARTITION_METADATA_FILE)) {
        Ok(text) => Ok(text
            .lines()
            .find_map(|l| l.strip_prefix("topic_id: "))
            .map(|id| id.trim().to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Makes `dir` the directory of the topic with `topic_id`: files of another topic (a deleted one
/// of the same name) are removed; an unmarked directory (written before topic ids were recorded)
/// is adopted.
fn claim_dir_blocking(dir: &Path, topic_id: [u8; 16]) -> io::Result<()> {
    let want = Uuid(topic_id).to_string();
    if dir.exists() {
        match marked_topic_id(dir)? {
            Some(id) if id != want => {
                tracing::warn!(dir = %dir.display(), old_topic_id = %id, "removing the files of a deleted topic of the same name");
                std::fs::remove_dir_all(dir)?;
            }
            Some(_) => return Ok(()),
            None => {}
        }
    }
    std::fs::create_dir_all(dir)?;
    crate::metadata::store::write_atomically(
        &dir.join(PARTITION_METADATA_FILE),
        metadata_text(topic_id).as_bytes(),
    )
}

/// `claim_dir_blocking` on the shard's blocking pool.
pub(super) async fn claim_dir(dir: &Path, topic_id: [u8; 16]) -> Result<(), StorageError> {
    let path = dir.to_path_buf();
    glommio::executor()
        .spawn_blocking(move || claim_dir_blocking(&path, topic_id))
        .await
        .map_err(|source| StorageError::Io {
            op: "claim",
            path: dir.to_path_buf(),
            source,
        })
}

/// Removes a deleted partition's directory; a missing one is already done.
pub async fn remove_partition_dir(dir: PathBuf) -> io::Result<()> {
    glommio::executor()
        .spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .await
}

/// Whether `name` (`{topic}-{index}`) is a partition of a topic in `image`.
fn is_live_partition(name: &str, image: &MetadataImage) -> bool {
    let Some((topic, index)) = name.rsplit_once('-') else {
        return false;
    };
    let Ok(index) = index.parse::<usize>() else {
        return false;
    };
    image
        .topic(topic)
        .is_some_and(|t| index < t.partitions.len())
}

/// Removes the partition directories of topics that are no longer in `image`: a deletion that a
/// crash or a failed removal left unfinished. Runs at start-up, before any shard opens a log.
pub fn sweep_orphaned_partition_dirs(data_dir: &Path, image: &MetadataImage) -> io::Result<()> {
    let entries = match std::fs::read_dir(data_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.file_type()?.is_dir() || NOT_PARTITIONS.contains(&name.as_str()) {
            continue;
        }
        if !is_live_partition(&name, image) {
            tracing::info!(dir = %entry.path().display(), "removing the partition directory of a deleted topic");
            std::fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::metadata::image::TopicMeta;

    fn image_with(name: &str, partitions: usize) -> MetadataImage {
        let mut image = MetadataImage::default();
        let topic = TopicMeta {
            name: name.to_string(),
            id: [7; 16],
            partitions: image.place_partitions(partitions, 1, 0),
            configs: BTreeMap::new(),
        };
        image.topics.insert(name.to_string(), Arc::new(topic));
        image
    }

    #[test]
    fn sweep_removes_partitions_of_deleted_topics_and_keeps_live_ones() {
        let data = tempfile::tempdir().unwrap();
        for d in [
            "my-topic-0",
            "my-topic-1",
            "my-topic-2",
            "gone-0",
            "__consumer_offsets",
            "commitlog",
        ] {
            std::fs::create_dir_all(data.path().join(d)).unwrap();
        }
        std::fs::write(data.path().join("metadata.json"), "{}").unwrap();
        sweep_orphaned_partition_dirs(data.path(), &image_with("my-topic", 2)).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(data.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "__consumer_offsets",
                "commitlog",
                "metadata.json",
                "my-topic-0",
                "my-topic-1"
            ]
        );
    }

    #[test]
    fn claiming_a_directory_of_another_topic_id_removes_its_files() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("t-0");
        claim_dir_blocking(&dir, [1; 16]).unwrap();
        std::fs::write(dir.join("00000000000000000000.log"), b"old records").unwrap();
        claim_dir_blocking(&dir, [1; 16]).unwrap();
        assert!(
            dir.join("00000000000000000000.log").exists(),
            "same id keeps"
        );
        claim_dir_blocking(&dir, [2; 16]).unwrap();
        assert!(!dir.join("00000000000000000000.log").exists());
        assert_eq!(
            marked_topic_id(&dir).unwrap(),
            Some(Uuid([2; 16]).to_string())
        );
    }

    #[test]
    fn an_unmarked_directory_is_adopted_with_its_files() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("t-0");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("00000000000000000000.log"), b"records").unwrap();
        claim_dir_blocking(&dir, [3; 16]).unwrap();
        assert!(dir.join("00000000000000000000.log").exists());
        assert_eq!(
            marked_topic_id(&dir).unwrap(),
            Some(Uuid([3; 16]).to_string())
        );
    }
}
