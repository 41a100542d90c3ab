//! Harness for Riffle's end-to-end tests: starts the real `riffle` binary on a free loopback
//! port with its own data dir on a real disk, finds the third-party clients (kcat, the pinned
//! Python virtualenv, KafkaJS), and bounds every child process in time.

mod acked_load;
mod broker;
pub mod http;
pub mod kafka;
mod process;
pub mod stalled;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

pub use acked_load::{
    assert_acked_readable, assert_acked_readable_from, AckedLoad, ReadFrom, Unacked,
};
pub use broker::{Broker, BrokerOptions, ADMIN_LINE, START_TIMEOUT, STOP_TIMEOUT};
pub use process::{python_ok, run_ok, run_with_timeout, Background};

/// The repository root (the workspace that holds this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives inside the repository")
        .to_path_buf()
}

/// `tests/python/<name>`.
pub fn python_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
}

/// The target profile dir this test executable was built into (`target/release`): the test
/// binary is `target/release/deps/<name>-<hash>`.
fn profile_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.to_path_buf())
}

/// The `riffle` binary: `$RIFFLE_BIN`, else `riffle` in this build's target dir (release, then debug).
pub fn riffle_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("RIFFLE_BIN") {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "RIFFLE_BIN={} does not exist: run scripts/test, or `cargo build --release -p riffle-broker`",
            bin.display()
        );
        return bin;
    }
    let mut candidates = Vec::new();
    if let Some(profile) = profile_dir() {
        candidates.push(profile.join("riffle"));
        if let Some(target) = profile.parent() {
            candidates.push(target.join("release").join("riffle"));
            candidates.push(target.join("debug").join("riffle"));
        }
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "the riffle binary is missing (looked at {candidates:?}): run scripts/test, or \
                 `cargo build --release -p riffle-broker` (or set RIFFLE_BIN)"
            )
        })
}

/// `kcat` on PATH; missing is a failure, never a skip.
pub fn kcat_bin() -> PathBuf {
    find_on_path("kcat").unwrap_or_else(|| {
        panic!("kcat is not on PATH: run scripts/test (it installs the Debian package kcat)")
    })
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The virtualenv's python with the pinned clients: `$RIFFLE_PYTHON`, else `<repo>/.venv/bin/python`.
pub fn python_bin() -> PathBuf {
    let python = std::env::var_os("RIFFLE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv").join("bin").join("python"));
    assert!(
        python.is_file(),
        "the test virtualenv's python {} is missing: run scripts/test (it creates .venv with the \
         pinned confluent-kafka and kafka-python)",
        python.display()
    );
    python
}

/// `node` on PATH with KafkaJS installed in tests/js (by `npm ci`); missing is a failure.
pub fn node_bin() -> PathBuf {
    let node = find_on_path("node").unwrap_or_else(|| {
        panic!("node is not on PATH: run scripts/test (it installs Node.js and KafkaJS)")
    });
    let kafkajs = js_dir().join("node_modules").join("kafkajs");
    assert!(
        kafkajs.is_dir(),
        "KafkaJS is not installed in {}: run scripts/test (it runs `npm ci` in tests/js)",
        js_dir().display()
    );
    node
}

/// `tests/js`, the KafkaJS scripts and their package.json.
pub fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// A directory for test data on a real disk: the system temp dir unless it is tmpfs (where
/// glommio silently falls back to buffered I/O, which would hide O_DIRECT bugs), else the target dir.
fn scratch_base() -> PathBuf {
    let tmp = std::env::temp_dir();
    if !is_tmpfs(&tmp) {
        return tmp;
    }
    let base = profile_dir()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| repo_root().join("target"))
        .join("riffle-tests-tmp");
    std::fs::create_dir_all(&base).expect("create the scratch dir under the target dir");
    base
}

fn is_tmpfs(path: &Path) -> bool {
    file_system_type(path) == Some(0x0102_1994)
}

/// Whether `path` is on ext4 or XFS, where a broker's partitions share device flushes.
pub fn is_ext4_or_xfs(path: &Path) -> bool {
    matches!(file_system_type(path), Some(0xEF53 | 0x5846_5342))
}

/// `statfs`'s `f_type` of the file system holding `path`.
fn file_system_type(path: &Path) -> Option<i64> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statfs only writes into the zeroed struct we pass; c_path is a valid C string.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        #[allow(clippy::unnecessary_cast)] // `f_type`'s width differs between targets
        (libc::statfs(c_path.as_ptr(), &mut st) == 0).then_some(st.f_type as i64)
    }
}

/// A fresh temporary directory on a real disk, removed on drop.
pub fn scratch_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(scratch_base())
        .expect("create a temporary dir")
}

/// A port on 127.0.0.1 that was free a moment ago and that no other caller in this process
/// has been given.
///
/// Ports come from below the kernel's ephemeral range, so neither an outgoing connection nor a
/// listener bound to port 0 can take one, and each is handed out once per process: a node that
/// is killed and restarted finds its port still unclaimed by the tests running beside it.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = test_port_range();
    let span = u32::from(high - low);
    // Start each process at its own offset, so test binaries run one after another (or a
    // port still in TIME_WAIT from the previous one) do not collide.
    let offset = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = low + ((offset + n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port left in {low}..{high}");
}

/// The ports `free_port` hands out: the ports just below (or, when it starts low, above) the
/// kernel's ephemeral range.
fn test_port_range() -> (u16, u16) {
    let ephemeral: Vec<u16> = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    match ephemeral[..] {
        [low, _] if low > 21000 => (20000, low),
        [_, high] if high < 64000 => (high + 1, 65535),
        [_, _] => (20000, 30000), // the ephemeral range is everything: overlap cannot be avoided
        _ => (20000, 32768),
    }
}
