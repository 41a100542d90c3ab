//! Test harness: a bounded glommio executor and test directories on a real disk.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

/// A directory on a real filesystem (O_DIRECT is meaningless on tmpfs).
pub(crate) fn test_dir() -> tempfile::TempDir {
    let tmp = std::env::temp_dir();
    let base = if is_tmpfs(&tmp) {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-data")
    } else {
        tmp
    };
    std::fs::create_dir_all(&base).expect("test data dir");
    tempfile::Builder::new()
        .prefix("riffle-storage-")
        .tempdir_in(base)
        .expect("temp dir")
}

fn is_tmpfs(p: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).expect("path without NUL");
    // SAFETY: statfs writes into a zeroed struct we own; the path is NUL-terminated.
    unsafe {
        let mut s: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut s) == 0 && s.f_type == 0x0102_1994
    }
}

/// Runs `f(dir)` on a fresh glommio executor; fails the test after `limit`.
pub(crate) fn run_with_limit<F, Fut>(limit: Duration, f: F)
where
    F: FnOnce(PathBuf) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = glommio::LocalExecutorBuilder::default()
            .io_memory(1 << 20)
            .spawn(move || f(path))
            .expect("executor")
            .join();
        let _ = tx.send(r.is_ok());
    });
    match rx.recv_timeout(limit) {
        Ok(true) => {}
        Ok(false) => panic!("test body panicked"),
        Err(_) => panic!("test timed out after {limit:?}"),
    }
    drop(dir);
}

pub(crate) fn run<F, Fut>(f: F)
where
    F: FnOnce(PathBuf) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    run_with_limit(Duration::from_secs(60), f)
}

/// An append acknowledged the way the broker does for acks=all: append, then flush.
pub(crate) async fn append_and_flush(
    log: &crate::PartitionLog,
    batch: bytes::Bytes,
) -> Result<crate::AppendInfo, crate::StorageError> {
    let info = log.append(batch).await?;
    log.flush().await?;
    Ok(info)
}
