//! The metadata store: the image persisted as JSON in the data dir, replaced atomically. The Raft
//! controller replaces this store later; nothing outside `metadata` knows how the image is kept.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use super::image::MetadataImage;

pub const METADATA_FILE: &str = "metadata.json";

/// Reads the stored image, or an empty one when the data dir is new.
pub fn load(data_dir: &Path) -> anyhow::Result<MetadataImage> {
    let path = data_dir.join(METADATA_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("metadata file {} is corrupt", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(MetadataImage::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Blocking: run on a helper thread, never on a shard.
pub fn save(data_dir: &Path, image: &MetadataImage) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(image).map_err(std::io::Error::other)?;
    write_atomically(&data_dir.join(METADATA_FILE), &json)
}

/// Writes `bytes` to a temporary file, syncs it, renames it over `path` and syncs the directory,
/// so that a crash leaves either the old or the new content. Blocking.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn saved_image_loads_back_identical() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), MetadataImage::default());
        let mut image = MetadataImage::default();
        let partitions = image.place_partitions(3, 2, 0);
        image.topics.insert(
            "t".into(),
            Arc::new(super::super::image::TopicMeta {
                name: "t".into(),
                id: [9; 16],
                partitions,
                configs: [("retention.ms".to_string(), "5".to_string())].into(),
            }),
        );
        image.version = 4;
        image.next_producer_id = 17;
        save(dir.path(), &image).unwrap();
        assert_eq!(load(dir.path()).unwrap(), image);
    }

    #[test]
    fn corrupt_metadata_is_an_error_not_an_empty_cluster() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(METADATA_FILE), b"{not json").unwrap();
        assert!(load(dir.path()).is_err());
    }
}
