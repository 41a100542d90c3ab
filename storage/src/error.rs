//! Storage errors with context; the broker maps them all to KAFKA_STORAGE_ERROR
//! except OffsetOutOfRange and InvalidBatch.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("disk full: {op} {path}: {source}")]
    DiskFull {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("permission denied: {op} {path}: {source}")]
    PermissionDenied {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("corrupt segment {path} at byte {position}: {reason}")]
    CorruptSegment {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    #[error("offset {offset} out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error("invalid record batch: {reason}")]
    InvalidBatch { reason: &'static str },
    #[error("log is closed")]
    Closed,
}

impl StorageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        match source.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => StorageError::DiskFull { op, path, source },
            Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => {
                StorageError::PermissionDenied { op, path, source }
            }
            _ => StorageError::Io { op, path, source },
        }
    }

    /// The process or the system ran out of file descriptors (EMFILE, ENFILE): a shortage that
    /// passes, not a fault of the disk or of the log's files.
    pub fn is_out_of_descriptors(&self) -> bool {
        matches!(self, StorageError::Io { source, .. }
            if matches!(source.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)))
    }

    pub(crate) fn glommio<T>(
        op: &'static str,
        path: impl Into<PathBuf>,
        err: glommio::GlommioError<T>,
    ) -> Self {
        let source = match err {
            glommio::GlommioError::EnhancedIoError { source, .. } => source,
            other => io::Error::from(other),
        };
        Self::io(op, path, source)
    }
}

/// A write-path failure remembered by the log: later calls get an equivalent error.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    pub op: &'static str,
    pub path: PathBuf,
    pub kind: io::ErrorKind,
    pub os_error: Option<i32>,
    pub message: String,
}

impl Failure {
    pub fn from_error(e: &StorageError) -> Failure {
        let (op, path, source) = match e {
            StorageError::Io { op, path, source }
            | StorageError::DiskFull { op, path, source }
            | StorageError::PermissionDenied { op, path, source } => (*op, path.clone(), source),
            other => {
                return Failure {
                    op: "write",
                    path: PathBuf::new(),
                    kind: io::ErrorKind::Other,
                    os_error: None,
                    message: other.to_string(),
                }
            }
        };
        Failure {
            op,
            path,
            kind: source.kind(),
            os_error: source.raw_os_error(),
            message: source.to_string(),
        }
    }

    pub fn to_error(&self) -> StorageError {
        let source = match self.os_error {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(self.kind, self.message.clone()),
        };
        StorageError::io(self.op, self.path.clone(), source)
    }
}
