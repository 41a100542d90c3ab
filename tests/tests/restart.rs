//! Durability across restarts: a graceful SIGTERM stop keeps every acknowledged message, and so
//! does a kill -9 in the middle of an acks=all produce load (acks=all means fdatasync'd).

use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use riffle_tests::{kafka, python_bin, python_ok, python_script, scratch_dir, Background, Broker};

const PARTITIONS: &str = "4";

fn acked_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.matches('\n').count())
        .unwrap_or(0)
}

#[test]
fn sigterm_restart_keeps_every_acknowledged_message() {
    let scratch = scratch_dir("riffle-restart-");
    let acked = scratch.path().join("acked.txt");
    let acked = acked.to_str().expect("UTF-8 path");
    let mut broker = Broker::start();
    let topic = "restart-graceful";
    kafka::create_topic(&broker.addr(), topic, 4);
    python_ok(
        "confluent_produce.py",
        &[&broker.addr(), topic, PARTITIONS, "40000", acked],
        Duration::from_secs(180),
    );
    let status = broker.stop();
    assert!(
        status.success(),
        "riffle exited with {status} after SIGTERM\n{}",
        broker.log_tail()
    );
    assert!(
        broker.stderr_log().contains("stopped cleanly"),
        "no clean stop in the log\n{}",
        broker.log_tail()
    );
    broker.restart();
    python_ok(
        "confluent_verify.py",
        &[&broker.addr(), topic, PARTITIONS, acked, "--exact"],
        Duration::from_secs(120),
    );
    // The topic itself (not only its bytes) survived: Metadata lists its 4 partitions.
    let md = kafka::metadata(&broker.addr()).expect("Metadata after restart");
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_deref() == Some(topic))
        .expect("the topic survives the restart");
    assert_eq!(t.partitions.len(), 4);
}

#[test]
fn kill9_during_acks_all_load_loses_no_acknowledged_message() {
    let scratch = scratch_dir("riffle-kill9-");
    let acked = scratch.path().join("acked.txt");
    let mut broker = Broker::start();
    let topic = "restart-kill9";
    kafka::create_topic(&broker.addr(), topic, 4);
    let producer = Background::spawn(
        Command::new(python_bin())
            .arg("-u")
            .arg(python_script("confluent_produce.py"))
            .args([&broker.addr(), topic, PARTITIONS, "0"])
            .arg(&acked)
            .arg("--tolerate-errors"),
    );
    // Kill the broker while the load runs: after enough acknowledgements to span many group commits.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked_lines(&acked) < 30_000 {
        assert!(
            Instant::now() < deadline,
            "only {} acknowledged messages after 60 s\n{}",
            acked_lines(&acked),
            broker.log_tail()
        );
        assert!(
            broker.is_running(),
            "the broker died\n{}",
            broker.log_tail()
        );
        thread::sleep(Duration::from_millis(20));
    }
    broker.kill9();
    // Let the producer see the dead connection, then stop it; its file holds what was acknowledged.
    thread::sleep(Duration::from_millis(300));
    drop(producer);
    let count = acked_lines(&acked);
    broker.restart();
    python_ok(
        "confluent_verify.py",
        &[
            &broker.addr(),
            topic,
            PARTITIONS,
            acked.to_str().expect("UTF-8 path"),
        ],
        Duration::from_secs(120),
    );
    assert!(count >= 30_000);
}
