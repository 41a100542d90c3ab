//! Seeded simulation of the controller quorum: each seed draws a schedule of message loss,
//! duplication, reordering, partitions and crash-restarts; the harness checks one leader per
//! term, no fork of committed entries and identical images after every step, progress in
//! every round where a majority can talk, no commit on a cut-off minority, and convergence
//! once healed.
//! Replay one seed with `RIFFLE_SIM_SEED=N cargo test -p riffle-controller --test simulation`;
//! soak with `RIFFLE_SIM_SEEDS=500`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use riffle_controller::sim::{Faults, SimStats, Simulation};

/// Seeds of the normal test run (each a few hundred ms in release; CI tests in release, a
/// debug build runs a few so that a developer's `cargo test` stays quick).
const SEEDS: u64 = if cfg!(debug_assertions) { 3 } else { 24 };
/// Fault rounds per seed, each followed by a progress check.
const ROUNDS: usize = 6;
/// Steps (10 ms of simulated time each) per round.
const ROUND_STEPS: u64 = 400;

/// A fresh directory for the nodes' logs. tmpfs when there is one: the simulation checks
/// the consensus logic, and fsync there costs nothing (raft_log's own tests use the disk).
fn sim_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let builder = tempfile::Builder::new().prefix("riffle-sim-").to_owned();
    if shm.is_dir() {
        builder.tempdir_in(shm)
    } else {
        builder.tempdir()
    }
    .expect("a temporary directory")
}

fn background_faults() -> Faults {
    Faults {
        drop_per_mille: 100,
        duplicate_per_mille: 50,
    }
}

/// One fault round that leaves a majority able to talk; returns the nodes it disturbed.
fn fault_round(sim: &mut Simulation, rng: &mut StdRng) {
    let voters = sim.voters();
    let minority = (voters.len() - 1) / 2;
    let victims: Vec<u64> = {
        let mut pool = voters.clone();
        let count = rng.gen_range(1..=minority);
        (0..count)
            .map(|_| pool.remove(rng.gen_range(0..pool.len())))
            .collect()
    };
    let before = sim.max_applied_index();
    match rng.gen_range(0..4) {
        0 => sim.run(ROUND_STEPS),
        1 => minority_round(sim, &victims),
        2 => {
            // The current leader alone on one side: the rest must elect a new one.
            let isolated = sim.leader().map(|l| vec![l]).unwrap_or(victims);
            minority_round(sim, &isolated);
        }
        _ => {
            // Down long enough that the others compact past its log: it needs a snapshot.
            for id in &victims {
                sim.crash(*id);
            }
            sim.run(ROUND_STEPS * 2);
            for id in &victims {
                sim.restart(*id);
            }
        }
    }
    assert!(
        sim.max_applied_index() > before,
        "no progress in a round where a majority could talk (applied index stays {before})"
    );
}

/// Cuts `minority` off for a round: its side commits nothing proposed after the cut (the
/// majority's progress is checked by the caller), then heals.
fn minority_round(sim: &mut Simulation, minority: &[u64]) {
    sim.partition(minority);
    // Its members may still commit an entry that a node of the other side already holds
    // (its ack may complete a quorum), never one appended after the cut.
    let appended_before = sim
        .voters()
        .iter()
        .filter_map(|id| sim.last_index(*id))
        .max();
    sim.run(ROUND_STEPS);
    for id in minority {
        assert!(
            sim.commit_index(*id) <= appended_before,
            "node {id} of the minority {minority:?} committed beyond {appended_before:?}"
        );
    }
    sim.heal();
}

fn run_seed(seed: u64, voters: u64) -> SimStats {
    let dir = sim_dir();
    let mut sim = Simulation::new(seed, voters, dir.path().to_owned(), background_faults());
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    for _ in 0..ROUNDS {
        fault_round(&mut sim, &mut rng);
    }
    sim.converge();
    assert!(
        sim.acknowledged_count() > 0,
        "seed {seed}: no topic creation was acknowledged"
    );
    sim.stats().clone()
}

fn run_seed_reporting(seed: u64, voters: u64) -> SimStats {
    match catch_unwind(AssertUnwindSafe(|| run_seed(seed, voters))) {
        Ok(stats) => stats,
        Err(panic) => {
            eprintln!("simulation failed for seed {seed} ({voters} voters); replay with RIFFLE_SIM_SEED={seed}");
            std::panic::resume_unwind(panic)
        }
    }
}

/// `RIFFLE_SIM_SEED=N` replays one seed; `RIFFLE_SIM_SEEDS=N` runs seeds 1..=N (a soak).
fn seeds() -> Vec<u64> {
    let number = |name: &str| {
        std::env::var(name).ok().map(|v| {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("{name} is a number"))
        })
    };
    match (number("RIFFLE_SIM_SEED"), number("RIFFLE_SIM_SEEDS")) {
        (Some(seed), _) => vec![seed],
        (None, Some(count)) => (1..=count).collect(),
        (None, None) => (1..=SEEDS).collect(),
    }
}

#[test]
fn three_controllers_hold_invariants_under_faults() {
    let mut totals = SimStats::default();
    for seed in seeds() {
        let stats = run_seed_reporting(seed, 3);
        totals.crashes += stats.crashes;
        totals.snapshots_sent += stats.snapshots_sent;
        totals.elections += stats.elections;
        totals.proposals_acknowledged += stats.proposals_acknowledged;
    }
    eprintln!("simulation totals: {totals:?}");
    if seeds().len() > 1 {
        // The schedules must really have exercised what they claim to.
        assert!(
            totals.crashes > 0 && totals.snapshots_sent > 0,
            "{totals:?}"
        );
    }
}

#[test]
fn five_controllers_survive_two_down() {
    // Five-node runs cost twice as much: six seeds normally, every seed in a soak.
    let count = if std::env::var("RIFFLE_SIM_SEEDS").is_ok() {
        usize::MAX
    } else {
        6
    };
    for seed in seeds().into_iter().take(count) {
        run_seed_reporting(seed, 5);
    }
}

#[test]
fn same_seed_gives_same_run() {
    let a = run_seed(7, 3);
    let b = run_seed(7, 3);
    assert_eq!(
        (
            a.steps,
            a.elections,
            a.crashes,
            a.snapshots_sent,
            a.proposals_acknowledged,
            a.final_applied_index
        ),
        (
            b.steps,
            b.elections,
            b.crashes,
            b.snapshots_sent,
            b.proposals_acknowledged,
            b.final_applied_index
        )
    );
}

#[test]
fn silent_broker_is_fenced_and_its_leadership_moves() {
    let dir = sim_dir();
    let mut sim = Simulation::new(42, 3, dir.path().to_owned(), background_faults());
    sim.run(ROUND_STEPS * 2);
    sim.converge();
    assert_eq!(
        sim.fenced_brokers(),
        Vec::<i32>::new(),
        "every broker heartbeats"
    );
    assert!(
        sim.partitions_led_by(3) > 0,
        "broker 3 leads some partitions"
    );
    // Sessions last 300 steps: broker 3 goes silent, brokers 1 and 2 keep heartbeating.
    sim.silence_broker(3);
    sim.run(ROUND_STEPS * 2);
    sim.converge();
    assert_eq!(sim.fenced_brokers(), vec![3]);
    assert_eq!(sim.partitions_led_by(3), 0);
}

#[test]
fn graceful_shutdown_hands_leadership_over() {
    let dir = sim_dir();
    let mut sim = Simulation::new(3, 3, dir.path().to_owned(), background_faults());
    sim.converge();
    let old_leader = sim.leader().expect("a converged quorum has a leader");
    let target = sim
        .transfer_leadership(old_leader)
        .expect("a leader with followers");
    assert_ne!(target, old_leader);
    for _ in 0..ROUND_STEPS {
        sim.run(1);
        if sim.leader().is_some_and(|l| l != old_leader) {
            break;
        }
    }
    let new_leader = sim.leader().expect("a leader after the transfer");
    assert_ne!(new_leader, old_leader);
    // The old leader can now stop without an election timeout on the others.
    sim.crash(old_leader);
    sim.run(ROUND_STEPS);
    sim.converge();
}

/// Runs until `done` holds, at most `ROUND_STEPS` steps.
fn run_until(sim: &mut Simulation, mut done: impl FnMut(&Simulation) -> bool) -> bool {
    for _ in 0..ROUND_STEPS {
        if done(sim) {
            return true;
        }
        sim.run(1);
    }
    done(sim)
}

#[test]
fn a_new_voter_catches_up_by_snapshot_and_the_leader_is_never_removed() {
    let dir = sim_dir();
    let mut sim = Simulation::new(11, 3, dir.path().to_owned(), background_faults());
    sim.run(ROUND_STEPS * 2);
    sim.converge();
    assert!(run_until(&mut sim, |sim| sim.leader().is_some()));
    assert!(sim.add_voter(4), "the leader takes the proposal");
    assert!(run_until(&mut sim, |sim| sim
        .applied_voters(4)
        .is_some_and(|v| v.contains(&4))));
    sim.converge();
    assert!(
        sim.snapshot_index(4).unwrap() > 1,
        "node 4 was brought up by a snapshot"
    );

    let leader = sim.leader().expect("a leader");
    assert!(
        sim.remove_voter(leader).is_err(),
        "removing the leader is refused"
    );
    let follower = sim.voters().into_iter().find(|v| *v != leader).unwrap();
    sim.remove_voter(follower).unwrap();
    let others: Vec<u64> = sim
        .voters()
        .into_iter()
        .filter(|v| *v != follower)
        .collect();
    assert!(run_until(&mut sim, |sim| others.iter().all(|id| sim
        .applied_voters(*id)
        .is_some_and(|v| !v.contains(&follower)))));
    sim.retire(follower);
    sim.run(ROUND_STEPS);
    sim.converge();
}
