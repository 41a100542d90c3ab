//! Harness for Riffle's end-to-end tests: starts the real `riffle` binary on a free loopback
//! port with its own data dir on a real disk, finds the third-party clients (kcat, the pinned
//! Python virtualenv), and bounds every child process in time.

pub mod kafka;

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long the broker may take to print its "riffle listening" line.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a SIGTERM shutdown may take before the harness sends SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How many lines of the broker's stderr a failing test prints.
const LOG_TAIL_LINES: usize = 60;

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
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs only writes into the zeroed struct we pass; c_path is a valid C string.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c_path.as_ptr(), &mut st) == 0 && st.f_type as i64 == TMPFS_MAGIC
    }
}

/// A fresh temporary directory on a real disk, removed on drop.
pub fn scratch_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(scratch_base())
        .expect("create a temporary dir")
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Options of one broker start.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    pub smp: usize,
    pub log_level: String,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        BrokerOptions {
            smp: 1,
            log_level: "info".to_string(),
        }
    }
}

/// A running `riffle serve` with its own port and data dir. Dropping it kills the process;
/// if the test is panicking, the tail of the broker's stderr is printed first.
pub struct Broker {
    options: BrokerOptions,
    port: u16,
    data_dir: tempfile::TempDir,
    stderr_path: PathBuf,
    child: Option<Child>,
    starts: usize,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_with(BrokerOptions::default())
    }

    pub fn start_with(options: BrokerOptions) -> Broker {
        let data_dir = scratch_dir("riffle-test-");
        let stderr_path = data_dir.path().with_extension("stderr.log");
        let mut broker = Broker {
            options,
            port: 0,
            data_dir,
            stderr_path,
            child: None,
            starts: 0,
        };
        // A port from free_port() can be taken by a parallel test before we bind it: retry.
        for attempt in 0..5 {
            broker.port = free_port();
            match broker.spawn() {
                Ok(()) => return broker,
                Err(e) if attempt < 4 && e.contains("in use") => continue,
                Err(e) => panic!("{e}\n{}", broker.log_tail()),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// Starts the binary (on the current port and data dir) and waits for its "riffle listening" line.
    fn spawn(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "the broker is already running");
        self.starts += 1;
        let mut stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_path)
            .expect("open the broker's stderr log");
        writeln!(
            stderr,
            "---- riffle-tests: start #{} on port {}",
            self.starts, self.port
        )
        .expect("write the stderr log");
        let mut child = Command::new(riffle_bin())
            .env_remove("RUST_LOG")
            .arg("serve")
            .arg("--listen")
            .arg(self.addr())
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .arg("--smp")
            .arg(self.options.smp.to_string())
            .arg("--log-level")
            .arg(&self.options.log_level)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", riffle_bin().display()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel::<String>();
        thread::spawn(move || {
            // Keeps draining stdout for the broker's whole life so it never blocks on a full pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) if line.starts_with("riffle listening") => {
                    self.child = Some(child);
                    return Ok(());
                }
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    thread::sleep(Duration::from_millis(50));
                }
            }
            if let Some(status) = child.try_wait().expect("try_wait") {
                let log = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
                let in_use = log.contains("in use");
                return Err(format!(
                    "riffle exited ({status}) before listening on {}{}",
                    self.addr(),
                    if in_use { " (address in use)" } else { "" }
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "riffle did not print 'riffle listening' within {START_TIMEOUT:?}"
                ));
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, the bootstrap address for clients.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the broker is running").id()
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    /// SIGTERM, then wait for a graceful exit; panics (after SIGKILL) if it takes too long or fails.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the broker is running");
        signal(&child, libc::SIGTERM);
        match wait_timeout(&mut child, STOP_TIMEOUT) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "riffle did not exit within {STOP_TIMEOUT:?} of SIGTERM\n{}",
                    self.log_tail()
                );
            }
        }
    }

    /// SIGKILL: no chance to flush or close anything.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("the broker is running");
        signal(&child, libc::SIGKILL);
        let _ = child.wait();
    }

    /// Starts the binary again on the same data dir and port.
    pub fn restart(&mut self) {
        // The old process just released the port; a parallel test could grab it, so retry a little.
        let mut last = String::new();
        for _ in 0..10 {
            match self.spawn() {
                Ok(()) => return,
                Err(e) => {
                    last = e;
                    thread::sleep(Duration::from_millis(200));
                }
            }
        }
        panic!("restart failed: {last}\n{}", self.log_tail());
    }

    /// Everything the broker wrote to stderr so far (all starts).
    pub fn stderr_log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The last lines of the broker's stderr, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.stderr_log();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(LOG_TAIL_LINES);
        format!(
            "---- last {} lines of the broker's stderr ({}):\n{}",
            lines.len() - from,
            self.stderr_path.display(),
            lines[from..].join("\n")
        )
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

fn signal(child: &Child, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: kill(2) on our own child's pid; it has not been waited for, so the pid is still ours.
    unsafe {
        libc::kill(pid, sig);
    }
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command to completion with `stdin` fed to it, killing it (and panicking) after `timeout`.
pub fn run_with_timeout(cmd: &mut Command, stdin: Option<Vec<u8>>, timeout: Duration) -> Output {
    let describe = format!("{cmd:?}");
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {describe}: {e}"));
    let writer = stdin.map(|data| {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let stdout = read_in_background(child.stdout.take().expect("stdout is piped"));
    let stderr = read_in_background(child.stderr.take().expect("stderr is piped"));
    let status = wait_timeout(&mut child, timeout);
    let status = match status {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let err = stderr.join().unwrap_or_default();
            panic!(
                "{describe} did not finish within {timeout:?}; its stderr:\n{}",
                String::from_utf8_lossy(&err)
            );
        }
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Like `run_with_timeout`, and panics with the command's output if it does not exit with 0.
pub fn run_ok(cmd: &mut Command, stdin: Option<Vec<u8>>, timeout: Duration) -> Output {
    let describe = format!("{cmd:?}");
    let out = run_with_timeout(cmd, stdin, timeout);
    assert!(
        out.status.success(),
        "{describe} failed ({}).\n---- stdout:\n{}\n---- stderr:\n{}",
        out.status,
        tail(&String::from_utf8_lossy(&out.stdout), 40),
        tail(&String::from_utf8_lossy(&out.stderr), 80)
    );
    out
}

fn read_in_background<R: Read + Send + 'static>(mut r: R) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `tests/python/<script>` with the venv's python, the broker address as first argument.
pub fn python_ok(script: &str, args: &[&str], timeout: Duration) -> Output {
    run_ok(
        Command::new(python_bin())
            .arg("-u")
            .arg(python_script(script))
            .args(args),
        None,
        timeout,
    )
}

/// A background child process (a load generator during a test), killed on drop.
pub struct Background {
    child: Option<Child>,
    describe: String,
    stdout: Option<thread::JoinHandle<Vec<u8>>>,
    stderr: Option<thread::JoinHandle<Vec<u8>>>,
}

impl Background {
    pub fn spawn(cmd: &mut Command) -> Background {
        let describe = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {describe}: {e}"));
        let stdout = Some(read_in_background(child.stdout.take().expect("piped")));
        let stderr = Some(read_in_background(child.stderr.take().expect("piped")));
        Background {
            child: Some(child),
            describe,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends a signal (e.g. SIGTERM to ask a load loop to finish).
    pub fn signal(&self, sig: libc::c_int) {
        signal(self.child.as_ref().expect("running"), sig);
    }

    /// Waits for the exit (killing it after `timeout`) and returns its output.
    pub fn wait(mut self, timeout: Duration) -> Output {
        let mut child = self.child.take().expect("running");
        let status = match wait_timeout(&mut child, timeout) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let status = child.wait().expect("wait");
                let err = self.stderr.take().map(|h| h.join().unwrap_or_default());
                panic!(
                    "{} did not finish within {timeout:?} ({status}); its stderr:\n{}",
                    self.describe,
                    String::from_utf8_lossy(&err.unwrap_or_default())
                );
            }
        };
        Output {
            status,
            stdout: self
                .stdout
                .take()
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default(),
            stderr: self
                .stderr
                .take()
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default(),
        }
    }

    /// Like `wait`, and panics with the output unless it exited with 0.
    pub fn wait_ok(self, timeout: Duration) -> Output {
        let describe = self.describe.clone();
        let out = self.wait(timeout);
        assert!(
            out.status.success(),
            "{describe} failed ({}).\n---- stdout:\n{}\n---- stderr:\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stdout), 40),
            tail(&String::from_utf8_lossy(&out.stderr), 80)
        );
        out
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
