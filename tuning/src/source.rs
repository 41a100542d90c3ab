//! Where the checks read procfs and sysfs from: the live machine, or (in tests) a set of files
//! recorded on another machine, so that every check runs against machines unlike this one.

#[cfg(test)]
use std::collections::BTreeMap;

/// Read-only access to procfs/sysfs text by absolute path.
pub(crate) trait Source {
    /// The file's text, or `None` when it does not exist or cannot be read.
    fn read(&self, path: &str) -> Option<String>;
    /// The names in a directory, sorted, or `None` when it cannot be listed.
    fn list(&self, dir: &str) -> Option<Vec<String>>;
}

/// The machine this process runs on.
pub(crate) struct LiveSource;

impl Source for LiveSource {
    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }

    fn list(&self, dir: &str) -> Option<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Some(names)
    }
}

/// Files recorded from a machine: path → contents. A directory lists the files recorded
/// under it.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct RecordedSource {
    files: BTreeMap<String, String>,
}

#[cfg(test)]
impl RecordedSource {
    pub(crate) fn new(files: &[(&str, &str)]) -> Self {
        RecordedSource {
            files: files
                .iter()
                .map(|(p, t)| (p.to_string(), t.to_string()))
                .collect(),
        }
    }
}

#[cfg(test)]
impl Source for RecordedSource {
    fn read(&self, path: &str) -> Option<String> {
        self.files.get(path).cloned()
    }

    fn list(&self, dir: &str) -> Option<Vec<String>> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let mut names: Vec<String> = self
            .files
            .keys()
            .filter_map(|p| p.strip_prefix(&prefix))
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
            .collect();
        names.dedup();
        (!names.is_empty()).then_some(names)
    }
}
