//! Child processes with a deadline: every client a test runs is killed (and the test fails)
//! when it overruns, and a background load is killed when its handle is dropped.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::{python_bin, python_script};

pub(crate) fn signal(child: &Child, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: kill(2) on our own child's pid; it has not been waited for, so the pid is still ours.
    unsafe {
        libc::kill(pid, sig);
    }
}

pub(crate) fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
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
