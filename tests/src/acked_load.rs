//! A load that records what it was promised: a confluent-kafka producer (idempotent, acks=all)
//! that sends until it is dropped and appends every acknowledged message to a file, so a test
//! can interrupt the broker under it (kill -9, SIGTERM) and then check that every acknowledged
//! message is there (`assert_acked_readable`).

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::{python_bin, python_ok, python_script, Background, Broker};

/// Whether a topic read back may hold records besides the acknowledged ones (a producer stopped
/// mid-flight may have had records written and not acknowledged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unacked {
    Allowed,
    None,
}

/// Whether retention may have deleted the start of the partitions (then each is read from its log
/// start, and only what was acknowledged at or past it is checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    Zero,
    LogStart,
}

/// Reads partitions 0..`partitions` of `topic` with confluent-kafka, from offset 0 to their end,
/// and fails unless every message listed in `acked` (lines "partition offset i", as
/// `confluent_produce.py` and `AckedLoad` write them) is there at its offset with its key, value
/// and headers; with `Unacked::None`, unless the partitions hold nothing else.
pub fn assert_acked_readable(
    addr: &str,
    topic: &str,
    partitions: impl Display,
    acked: impl AsRef<Path>,
    unacked: Unacked,
) {
    assert_acked_readable_from(addr, topic, partitions, acked, unacked, ReadFrom::Zero);
}

/// `assert_acked_readable`, from offset 0 or from each partition's log start.
pub fn assert_acked_readable_from(
    addr: &str,
    topic: &str,
    partitions: impl Display,
    acked: impl AsRef<Path>,
    unacked: Unacked,
    from: ReadFrom,
) {
    let partitions = partitions.to_string();
    let acked = acked.as_ref().to_str().expect("a UTF-8 path");
    let mut args = vec![addr, topic, &partitions, acked];
    if unacked == Unacked::None {
        args.push("--exact");
    }
    if from == ReadFrom::LogStart {
        args.push("--from-log-start");
    }
    python_ok("confluent_verify.py", &args, Duration::from_secs(120));
}

pub struct AckedLoad {
    /// Killed when dropped; the file keeps what was acknowledged.
    _producer: Background,
    acked: PathBuf,
}

impl AckedLoad {
    /// Starts producing round-robin to `partitions` partitions of `topic`, recording to `acked`.
    pub fn start(broker: &Broker, topic: &str, partitions: i32, acked: &Path) -> AckedLoad {
        let producer = Background::spawn(
            Command::new(python_bin())
                .arg("-u")
                .arg(python_script("confluent_produce.py"))
                .args([&broker.addr(), topic, &partitions.to_string(), "0"])
                .arg(acked)
                .arg("--tolerate-errors"),
        );
        AckedLoad {
            _producer: producer,
            acked: acked.to_path_buf(),
        }
    }

    /// Messages acknowledged so far.
    pub fn acknowledged(&self) -> usize {
        std::fs::read_to_string(&self.acked)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// Waits until `count` messages are acknowledged and `also(broker)` holds; panics if the
    /// broker dies or `within` passes first.
    pub fn wait_for(
        &self,
        broker: &mut Broker,
        count: usize,
        within: Duration,
        also: impl Fn(&Broker) -> bool,
    ) {
        let deadline = Instant::now() + within;
        while self.acknowledged() < count || !also(broker) {
            assert!(
                Instant::now() < deadline,
                "{} acknowledged messages after {within:?} (waiting for {count} and the test's condition)\n{}",
                self.acknowledged(),
                broker.log_tail()
            );
            assert!(
                broker.is_running(),
                "the broker died\n{}",
                broker.log_tail()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Called once the broker was interrupted: lets the producer see the connection go, then
    /// stops it (its file holds what was acknowledged).
    pub fn stop(self) {
        thread::sleep(Duration::from_millis(300));
    }
}
