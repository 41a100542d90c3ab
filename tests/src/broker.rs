//! One `riffle serve` process per test: its own port and data dir, started, stopped with
//! SIGTERM, killed with SIGKILL and restarted on the same data dir; its stderr kept in a file.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::process::{signal, wait_timeout};
use crate::{free_port, riffle_bin, scratch_dir};

/// How long the broker may take to print its "riffle listening" line.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a SIGTERM shutdown may take before the harness sends SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// What the broker prints, before the address, once its admin listener is bound.
pub const ADMIN_LINE: &str = "riffle admin listening on http://";
/// How many lines of the broker's stderr a failing test prints.
const LOG_TAIL_LINES: usize = 60;

/// Options of one broker start.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    pub smp: usize,
    pub log_level: String,
    /// More `riffle serve` arguments (e.g. `--config FILE`, `--advertised HOST:PORT`).
    pub extra_args: Vec<String>,
    /// A TOML config file's contents: written beside the data dir and passed with `--config`.
    pub config_toml: Option<String>,
    /// RLIMIT_NOFILE (soft, hard) the broker starts with; None: inherited.
    pub open_files_limit: Option<(u64, u64)>,
    /// The data dir, when the test provides one (e.g. on a small file system); None: a fresh
    /// scratch dir.
    pub data_dir: Option<PathBuf>,
    /// The address the Kafka and admin listeners bind (the network namespace's address).
    pub host: String,
    /// A network namespace to run the broker in (`ip netns exec NAME riffle ...`).
    pub netns: Option<String>,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        BrokerOptions {
            smp: 1,
            log_level: "info".to_string(),
            extra_args: Vec::new(),
            config_toml: None,
            open_files_limit: None,
            data_dir: None,
            host: "127.0.0.1".to_string(),
            netns: None,
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
    config_path: PathBuf,
    child: Option<Child>,
    starts: usize,
    /// The admin listener's address, as the broker printed it at its last start.
    admin_addr: Option<String>,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_with(BrokerOptions::default())
    }

    pub fn start_with(options: BrokerOptions) -> Broker {
        let data_dir = scratch_dir("riffle-test-");
        let stderr_path = data_dir.path().with_extension("stderr.log");
        let config_path = data_dir.path().with_extension("config.toml");
        if let Some(toml) = &options.config_toml {
            std::fs::write(&config_path, toml).expect("write the broker's config file");
        }
        let mut broker = Broker {
            options,
            port: 0,
            data_dir,
            stderr_path,
            config_path,
            child: None,
            starts: 0,
            admin_addr: None,
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
        let mut command = match &self.options.netns {
            Some(netns) => {
                // `ip netns exec` execs riffle in place: the child's pid is riffle's.
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns]).arg(riffle_bin());
                command
            }
            None => Command::new(riffle_bin()),
        };
        command
            .env_remove("RUST_LOG")
            .arg("serve")
            .arg("--listen")
            .arg(self.addr())
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--smp")
            .arg(self.options.smp.to_string())
            .arg("--log-level")
            .arg(&self.options.log_level)
            .args(&self.options.extra_args);
        // A port of its own for the admin listener, so parallel tests never share one.
        if !self
            .options
            .extra_args
            .iter()
            .any(|a| a == "--admin-listen")
        {
            command
                .arg("--admin-listen")
                .arg(format!("{}:0", self.options.host));
        }
        if self.options.config_toml.is_some() {
            command.arg("--config").arg(&self.config_path);
        }
        if let Some((soft, hard)) = self.options.open_files_limit {
            set_open_files_limit(&mut command, soft, hard);
        }
        let mut child = command
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
                Ok(line) if line.starts_with(ADMIN_LINE) => {
                    self.admin_addr = Some(line[ADMIN_LINE.len()..].trim().to_string());
                }
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    thread::sleep(Duration::from_millis(50));
                }
            }
            if let Some(status) = child.try_wait().expect("try_wait") {
                let log = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
                let in_use = log.contains("in use") || log.contains("another process is listening");
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

    /// `HOST:PORT` (`127.0.0.1:PORT` unless started with another host), the bootstrap
    /// address for clients.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.options.host, self.port)
    }

    /// `127.0.0.1:PORT` of the admin HTTP listener (metrics, health, console).
    pub fn admin_addr(&self) -> String {
        self.admin_addr
            .clone()
            .expect("the broker printed its admin listener's address")
    }

    /// The running broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the broker is running").id()
    }

    pub fn data_dir(&self) -> &Path {
        self.options
            .data_dir
            .as_deref()
            .unwrap_or(self.data_dir.path())
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

    /// SIGSTOP: the process stays, silent, until `resume`.
    pub fn pause(&self) {
        signal(
            self.child.as_ref().expect("the broker is running"),
            libc::SIGSTOP,
        );
    }

    /// SIGCONT after `pause`.
    pub fn resume(&self) {
        signal(
            self.child.as_ref().expect("the broker is running"),
            libc::SIGCONT,
        );
    }

    /// SIGKILL: no chance to flush or close anything.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("the broker is running");
        signal(&child, libc::SIGKILL);
        let _ = child.wait();
    }

    /// Starts the binary again on the same data dir and port, with another shard count.
    pub fn restart_with_smp(&mut self, smp: usize) {
        self.options.smp = smp;
        self.restart();
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

/// Makes the child start with RLIMIT_NOFILE (soft, hard).
fn set_open_files_limit(command: &mut Command, soft: u64, hard: u64) {
    use std::os::unix::process::CommandExt;
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: the closure runs in the forked child before exec and only calls setrlimit, which is
    // async-signal-safe, on a struct copied into it.
    unsafe {
        command.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
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
        let _ = std::fs::remove_file(&self.config_path);
    }
}
