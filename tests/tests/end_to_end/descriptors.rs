//! File descriptors: the broker raises its open-files limit to the hard limit and says so,
//! running out of descriptors on accept pauses accepting (no spin, no crash, one log line per
//! interval) until descriptors are free again, and Kafka 4's minimum `segment.bytes` (1 MiB),
//! which keeps segment files few, is enforced for topics and for the broker default.

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use riffle_protocol::messages::{MetadataRequest, MetadataResponse};
use riffle_tests::kafka::{self, Connection};
use riffle_tests::{python_ok, riffle_bin, run_with_timeout, scratch_dir, Broker, BrokerOptions};

/// (soft, hard) RLIMIT_NOFILE of this test process.
fn own_open_files_limit() -> (u64, u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    (limit.rlim_cur, limit.rlim_max)
}

/// (soft, hard) "Max open files" of a process, from /proc/PID/limits.
fn open_files_limit_of(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("read limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let fields: Vec<&str> = line["Max open files".len()..].split_whitespace().collect();
    (fields[0].to_string(), fields[1].to_string())
}

#[test]
fn open_files_limit_is_raised_to_the_hard_limit_and_reported_at_start() {
    let (_, hard) = own_open_files_limit();
    let soft = (hard / 2).clamp(64, 1024);
    let broker = Broker::start_with(BrokerOptions {
        open_files_limit: Some((soft, hard)),
        ..Default::default()
    });
    let hard_text = if hard == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        hard.to_string()
    };
    let (now_soft, now_hard) = open_files_limit_of(broker.pid());
    assert_eq!(now_hard, hard_text, "the hard limit is left alone");
    if hard != libc::RLIM_INFINITY {
        assert_eq!(now_soft, hard_text, "started with soft limit {soft}");
        assert!(
            broker
                .stderr_log()
                .contains(&format!("open files limit {hard}")),
            "the start-up line does not report the limit:\n{}",
            broker.log_tail()
        );
    }
}

/// CPU time (user + system) the process has used, from /proc/PID/stat, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // Fields after the ")" that ends the command name; utime and stime are the 14th and 15th.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("list fds")
        .count()
}

fn metadata_with_timeout(addr: &str, timeout: Duration) -> std::io::Result<MetadataResponse> {
    let mut conn = Connection::connect(addr)?;
    conn.stream().set_read_timeout(Some(timeout))?;
    conn.request(
        kafka::METADATA_VERSION,
        &MetadataRequest {
            topics: Some(vec![]),
            ..Default::default()
        },
    )
}

#[test]
fn accepting_without_descriptors_backs_off_without_spinning_and_resumes_when_they_free() {
    // Measure what an idle broker holds, then restart it with room for only a few connections.
    let probe = Broker::start();
    let idle_descriptors = open_descriptors(probe.pid()) as u64;
    drop(probe);
    let limit = idle_descriptors + 16;
    let broker = Broker::start_with(BrokerOptions {
        open_files_limit: Some((limit, limit)),
        ..Default::default()
    });
    let pid = broker.pid();

    let mut held = Vec::new();
    for _ in 0..40 {
        match Connection::connect(&broker.addr()) {
            Ok(conn) => held.push(conn),
            Err(e) => panic!("connect: {e} (the backlog should take it)"),
        }
    }
    // Now the broker is out of descriptors: a new client waits in the backlog, unanswered.
    assert!(
        metadata_with_timeout(&broker.addr(), Duration::from_millis(500)).is_err(),
        "a client was served with every descriptor in use (limit {limit})"
    );
    let ticks_before = cpu_ticks(pid);
    thread::sleep(Duration::from_secs(2));
    let ticks = cpu_ticks(pid) - ticks_before;
    // SAFETY: sysconf has no memory effects.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    assert!(
        ticks < ticks_per_second / 2,
        "the broker used {ticks} ticks of CPU in 2 s out of descriptors: it spins"
    );
    let log = broker.stderr_log();
    let reports = log.matches("out of file descriptors").count();
    assert!(
        (1..=2).contains(&reports),
        "{reports} log lines about descriptors in about 3 s, want one per interval:\n{}",
        broker.log_tail()
    );

    drop(held);
    let deadline = Instant::now() + Duration::from_secs(15);
    while metadata_with_timeout(&broker.addr(), Duration::from_secs(2)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the broker does not serve again once descriptors are free:\n{}",
            broker.log_tail()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn segment_bytes_below_one_mib_is_refused_with_invalid_config_through_confluent_admin() {
    let broker = Broker::start();
    python_ok(
        "confluent_segment_bytes.py",
        &[&broker.addr()],
        Duration::from_secs(60),
    );
}

#[test]
fn log_segment_bytes_below_one_mib_stops_the_broker_at_start_with_a_clear_message() {
    let scratch = scratch_dir("riffle-segment-config-");
    let config = scratch.path().join("riffle.toml");
    std::fs::write(&config, "log_segment_bytes = 65536\n").expect("write the config");
    let out = run_with_timeout(
        Command::new(riffle_bin())
            .env_remove("RUST_LOG")
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", riffle_tests::free_port()))
            .arg("--data-dir")
            .arg(scratch.path().join("data"))
            .arg("--config")
            .arg(&config),
        None,
        Duration::from_secs(20),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the broker started: {stderr}");
    assert!(
        stderr.contains("log_segment_bytes must be at least 1048576"),
        "unclear refusal: {stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("riffle listening"),
        "it listened before refusing"
    );
}
