//! Shutdown is bounded: SIGTERM to a `--smp 2` broker under produce load, with a client that has
//! stopped reading its responses, ends within `shutdown_timeout_ms` (plus the time to close the
//! logs), cleanly, and a restart serves every acknowledged record.

use std::time::{Duration, Instant};

use riffle_tests::kafka;
use riffle_tests::stalled::NonReadingProducer;
use riffle_tests::{assert_acked_readable, scratch_dir, AckedLoad, Broker, BrokerOptions, Unacked};

const PARTITIONS: &str = "4";

#[test]
fn sigterm_with_two_shards_under_load_and_a_non_reading_client_ends_in_time_and_loses_nothing() {
    let shutdown_timeout = Duration::from_millis(3000);
    let scratch = scratch_dir("riffle-shutdown-");
    let acked = scratch.path().join("acked.txt");
    let mut broker = Broker::start_with(BrokerOptions {
        smp: 2,
        // The write timeout is far away: only the shutdown deadline can cut the stalled client.
        config_toml: Some(format!(
            "shutdown_timeout_ms = {}\nresponse_write_timeout_ms = 600000\n",
            shutdown_timeout.as_millis()
        )),
        ..Default::default()
    });
    let topic = "shutdown-under-load";
    kafka::create_topic(&broker.addr(), topic, 4);
    let stalled_topic = format!("shutdown-never-reads-{}", "x".repeat(200));
    kafka::create_topic(&broker.addr(), &stalled_topic, 1);

    let load = AckedLoad::start(&broker, topic, 4, &acked);
    let stalled = NonReadingProducer::start(&broker.addr(), &stalled_topic);
    stalled.wait_until_stalled(Duration::from_millis(300), Duration::from_secs(30));
    load.wait_for(&mut broker, 5_000, Duration::from_secs(60), |_| true);

    let started = Instant::now();
    let status = broker.stop();
    let took = started.elapsed();
    assert!(
        status.success(),
        "the broker did not stop cleanly ({status})\n{}",
        broker.log_tail()
    );
    assert!(
        took < shutdown_timeout * 2,
        "shutdown took {took:?}, shutdown_timeout_ms is {shutdown_timeout:?}"
    );
    let log = broker.stderr_log();
    assert!(
        log.contains("cutting them") && log.contains("riffle stopped cleanly"),
        "the stalled client was not cut by the shutdown deadline, or logs did not close:\n{}",
        broker.log_tail()
    );
    let cut = stalled.wait_until_cut(Duration::from_secs(10));
    assert!(cut.requests_sent > 0);

    load.stop();
    broker.restart();
    assert_acked_readable(&broker.addr(), topic, PARTITIONS, acked, Unacked::Allowed);
}
