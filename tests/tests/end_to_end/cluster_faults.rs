//! The controller quorum under faults, against real processes: two of three nodes stopped
//! (admin changes refused with a retriable REQUEST_TIMED_OUT, nothing half-applied, a retry
//! works once they are back), a node killed while the leader compacts its log past it (it
//! catches up by snapshot), a broker that stops heartbeating (fenced, then unfenced), and a
//! network partition between controllers made with Linux network namespaces (the minority
//! never commits, the majority does, every image converges after healing).

use std::collections::BTreeMap;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use riffle_tests::{kafka, kcat_bin, python_ok, riffle_bin, run_ok, Broker, BrokerOptions};
use serde_json::Value;

use crate::cluster::{
    agreed_leader, all_voters_caught_up, brokers_become, cluster_doc, kcat_sees, start_cluster,
    COMMAND_TIMEOUT, FAST_TICKS_TOML, LEADER_TIMEOUT,
};

/// `controller_proposal_timeout_ms` of FAST_TICKS_TOML, plus slack for a loaded machine: a
/// change the quorum cannot commit is answered within this long.
const REFUSAL_BOUND: Duration = Duration::from_secs(8);

/// The topics kcat lists from `node`, with their partition counts.
fn kcat_topics(node: &Broker) -> BTreeMap<String, usize> {
    let out = run_ok(
        Command::new(kcat_bin()).args(["-b", &node.addr(), "-L", "-m", "10"]),
        None,
        COMMAND_TIMEOUT,
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            // `  topic "NAME" with N partitions:`
            let rest = line.trim().strip_prefix("topic \"")?;
            let (name, rest) = rest.split_once("\" with ")?;
            let count = rest.split_whitespace().next()?.parse().ok()?;
            Some((name.to_string(), count))
        })
        .collect()
}

/// Waits until every node has applied all the leader committed and lists the same topics;
/// returns those topics.
fn images_converge(nodes: &[&Broker]) -> BTreeMap<String, usize> {
    let deadline = Instant::now() + LEADER_TIMEOUT;
    loop {
        let quorums: Vec<Value> = nodes
            .iter()
            .map(|n| cluster_doc(n)["quorum"].clone())
            .collect();
        let listings: Vec<BTreeMap<String, usize>> = nodes.iter().map(|n| kcat_topics(n)).collect();
        let same = |key: &str| quorums.iter().all(|q| q[key] == quorums[0][key]);
        if same("applied_index")
            && same("commit_index")
            && same("topic_count")
            && same("brokers")
            && quorums[0]["applied_index"] == quorums[0]["commit_index"]
            && listings.iter().all(|l| *l == listings[0])
        {
            return listings[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "images not converged within {LEADER_TIMEOUT:?}:\n{quorums:#?}\n{listings:#?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the three nodes agree on a leader, every voter is caught up and every broker
/// is registered and unfenced (so topics can be placed); returns the leader's id.
fn cluster_ready(nodes: &[Broker]) -> u64 {
    let all: Vec<&Broker> = nodes.iter().collect();
    let (leader, _) = agreed_leader(&all, &[1, 2, 3]);
    let leader_node = &nodes[leader as usize - 1];
    all_voters_caught_up(leader_node);
    brokers_become(leader_node, &UNFENCED);
    leader
}

/// Brokers 1-3 registered and unfenced, as `brokers_become` takes them.
const UNFENCED: [(i64, bool); 3] = [(1, false), (2, false), (3, false)];

/// Waits until `node` knows no leader (it has noticed the quorum lost its majority).
fn leader_lost(node: &Broker) {
    let deadline = Instant::now() + LEADER_TIMEOUT;
    loop {
        let quorum = cluster_doc(node)["quorum"].clone();
        if quorum["leader_id"].is_null() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} still names a leader after {LEADER_TIMEOUT:?}: {quorum}",
            node.addr()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Index (0-2) of a node other than `leader`.
fn a_follower(leader: u64) -> usize {
    leader as usize % 3
}

/// How `with_two_of_three_stopped` takes two nodes away and brings them back.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// SIGSTOP, then SIGCONT: the processes come back with their state and connections.
    Pause,
    /// kill -9, then a restart on the same data dir: back from what they had made durable.
    Kill,
}

#[test]
fn with_two_of_three_paused_changes_fail_retriably_and_nothing_is_half_applied() {
    with_two_of_three_stopped(Stop::Pause);
}

#[test]
fn with_two_of_three_killed_changes_fail_retriably_and_nothing_is_half_applied() {
    with_two_of_three_stopped(Stop::Kill);
}

fn with_two_of_three_stopped(stop: Stop) {
    let mut nodes = start_cluster();
    let leader = cluster_ready(&nodes);
    // Paused, the survivor is the leader: its proposals reach its log but can never commit.
    // Killed, it is a follower: its proposals go to a leader that is gone.
    let survivor = match stop {
        Stop::Pause => leader as usize - 1,
        Stop::Kill => a_follower(leader),
    };
    kafka::create_topic(&nodes[survivor].addr(), "grown", 1);
    kafka::create_topic(&nodes[survivor].addr(), "doomed", 1);
    for node in &nodes {
        kcat_sees(node, "doomed", Some(1));
    }

    let stopped: Vec<usize> = (0..3).filter(|i| *i != survivor).collect();
    for &i in &stopped {
        match stop {
            Stop::Pause => nodes[i].pause(),
            Stop::Kill => nodes[i].kill9(),
        }
    }
    if let Stop::Kill = stop {
        // The client starts once the survivor knows the leader is gone: one that had learnt
        // a dead broker as its controller from Metadata would wait for that broker instead
        // (librdkafka: "Timed out waiting for controller").
        leader_lost(&nodes[survivor]);
    }
    let bound = REFUSAL_BOUND.as_secs().to_string();
    let args = |mode| [mode, "fresh", "doomed", "grown", "3", &bound];
    let survivor_addr = nodes[survivor].addr();
    let refused = python_ok(
        "confluent_admin_no_majority.py",
        &[&[survivor_addr.as_str()][..], &args("refused")].concat(),
        COMMAND_TIMEOUT,
    );
    println!("{stop:?}: {}", String::from_utf8_lossy(&refused.stdout));
    let (code, message) = kafka::try_create_topic(&survivor_addr, "fresh", 1, 1, &[]);
    assert_eq!(code, 7, "REQUEST_TIMED_OUT: {message:?}");
    assert!(
        message
            .as_deref()
            .is_some_and(|m| !m.contains("NOT_CONTROLLER")),
        "{message:?}"
    );
    let listed = kcat_topics(&nodes[survivor]);
    assert_eq!(listed.get("grown"), Some(&1), "{listed:?}");
    assert!(listed.contains_key("doomed") && !listed.contains_key("fresh"));

    // Back: each refused change is applied on all three or on none; a retry then works.
    for &i in &stopped {
        match stop {
            Stop::Pause => nodes[i].resume(),
            Stop::Kill => nodes[i].restart(),
        }
    }
    let all: Vec<&Broker> = nodes.iter().collect();
    agreed_leader(&all, &[1, 2, 3]);
    let converged = images_converge(&all);
    println!("{stop:?}: after the majority came back: {converged:?}");
    python_ok(
        "confluent_admin_no_majority.py",
        &[&[nodes[stopped[0]].addr().as_str()][..], &args("retry")].concat(),
        COMMAND_TIMEOUT,
    );
    let converged = images_converge(&all);
    assert_eq!(converged.get("fresh"), Some(&2), "{converged:?}");
    assert_eq!(converged.get("grown"), Some(&3), "{converged:?}");
    assert!(!converged.contains_key("doomed"), "{converged:?}");
}

#[test]
fn a_node_killed_while_the_leader_compacts_its_log_catches_up_by_snapshot() {
    let mut nodes = start_cluster();
    let leader = cluster_ready(&nodes);
    let behind = a_follower(leader);
    nodes[behind].kill9();

    // 30 creates and 15 deletes: more than twice the snapshot interval (20 entries in
    // FAST_TICKS_TOML), so the leader's log no longer holds what the killed node has.
    let leader_node = &nodes[leader as usize - 1];
    for i in 0..30 {
        let (code, message) =
            kafka::try_create_topic(&leader_node.addr(), &format!("t{i:02}"), 1, 1, &[]);
        assert_eq!(code, 0, "t{i:02}: {message:?}");
    }
    for i in (0..30).step_by(2) {
        let deleted = run_ok(
            Command::new(riffle_bin()).args([
                "topic",
                "delete",
                &format!("t{i:02}"),
                "--brokers",
                &leader_node.addr(),
            ]),
            None,
            COMMAND_TIMEOUT,
        );
        assert!(deleted.status.success());
    }

    nodes[behind].restart();
    let all: Vec<&Broker> = nodes.iter().collect();
    let topics = images_converge(&all);
    let expected: BTreeMap<String, usize> = (1..30)
        .step_by(2)
        .map(|i| (format!("t{i:02}"), 1))
        .collect();
    assert_eq!(topics, expected);
    let log = nodes[behind].stderr_log();
    assert!(
        log.contains("installed the leader's snapshot"),
        "the killed node caught up by snapshot:\n{}",
        nodes[behind].log_tail()
    );
    let leader_log = nodes[leader as usize - 1].stderr_log();
    assert!(
        leader_log.contains("sending a snapshot"),
        "{}",
        nodes[leader as usize - 1].log_tail()
    );

    // Every node restarts from its own snapshot and the log after it (the caught-up node from
    // the snapshot it installed): nothing committed is lost.
    for node in nodes.iter_mut() {
        node.kill9();
    }
    for node in nodes.iter_mut() {
        node.restart();
    }
    let all: Vec<&Broker> = nodes.iter().collect();
    agreed_leader(&all, &[1, 2, 3]);
    assert_eq!(images_converge(&all), expected);
}

#[test]
fn a_broker_that_stops_heartbeating_is_fenced_and_unfenced_when_it_returns() {
    let nodes = start_cluster();
    let leader = cluster_ready(&nodes);
    let leader_node = &nodes[leader as usize - 1];

    // Silent (SIGSTOP) for longer than broker_session_timeout_ms (2 s).
    let silent = a_follower(leader);
    let silent_id = silent as i64 + 1;
    nodes[silent].pause();
    let fenced: Vec<(i64, bool)> = (1..=3).map(|id| (id, id == silent_id)).collect();
    for (i, node) in nodes.iter().enumerate() {
        if i != silent {
            brokers_become(node, &fenced);
            let info = cluster_info(node);
            let shown: Vec<(i64, bool)> = info["quorum"]["brokers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| (b["broker_id"].as_i64().unwrap_or(-1), b["fenced"] == true))
                .collect();
            assert_eq!(shown, fenced, "riffle cluster info --json: {info}");
        }
    }
    // The two left still form a majority.
    let (code, message) = kafka::try_create_topic(&leader_node.addr(), "while-fenced", 1, 1, &[]);
    assert_eq!(code, 0, "{message:?}");

    nodes[silent].resume();
    for node in &nodes {
        brokers_become(node, &UNFENCED);
    }
    kcat_sees(&nodes[silent], "while-fenced", Some(1));
    let info = cluster_info(leader_node);
    assert!(
        info["quorum"]["brokers"]
            .as_array()
            .is_some_and(|b| b.len() == 3 && b.iter().all(|b| b["fenced"] == false)),
        "{info}"
    );
}

/// `riffle cluster info --json` from `node`.
fn cluster_info(node: &Broker) -> Value {
    let out = run_ok(
        Command::new(riffle_bin()).args([
            "cluster",
            "info",
            "--brokers",
            &node.addr(),
            "--admin",
            &node.admin_addr(),
            "--json",
        ]),
        None,
        COMMAND_TIMEOUT,
    );
    serde_json::from_slice(&out.stdout).expect("cluster info --json")
}

#[test]
fn a_partitioned_leader_never_commits_the_majority_elects_and_images_converge_after_healing() {
    partition_one_controller(Cut::Leader);
}

#[test]
fn a_partitioned_follower_never_commits_nor_disturbs_the_leader_and_catches_up_after_healing() {
    partition_one_controller(Cut::Follower);
}

/// Which controller `partition_one_controller` cuts off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cut {
    Leader,
    Follower,
}

fn partition_one_controller(cut: Cut) {
    // Declared first so it is dropped last, after the nodes in its namespaces are killed.
    let lab = match NetnsLab::new() {
        Ok(lab) => lab,
        Err(reason) => {
            println!("SKIPPED the {cut:?} partition test: no network namespaces here ({reason})");
            return;
        }
    };
    let nodes = lab.start_cluster();
    let all: Vec<&Broker> = nodes.iter().collect();
    let leader = cluster_ready(&nodes);
    let (_, term) = agreed_leader(&all, &[leader]);
    kafka::create_topic(&nodes[0].addr(), "before", 2);
    images_converge(&all);

    // One controller is cut off from the others (the test still reaches it).
    let cut_id = match cut {
        Cut::Leader => leader,
        Cut::Follower => a_follower(leader) as u64 + 1,
    };
    lab.cut(cut_id);
    let minority = &nodes[cut_id as usize - 1];
    let majority_ids: Vec<u64> = (1..=3).filter(|id| *id != cut_id).collect();
    let majority: Vec<&Broker> = majority_ids
        .iter()
        .map(|id| &nodes[*id as usize - 1])
        .collect();
    let (new_leader, new_term) = agreed_leader(&majority, &majority_ids);
    if cut == Cut::Follower {
        assert_eq!((new_leader, new_term), (leader, term), "the leader is kept");
    }
    let minority_commit = cluster_doc(minority)["quorum"]["commit_index"].clone();
    let (code, message) = kafka::try_create_topic(&minority.addr(), "minority", 1, 1, &[]);
    assert_eq!(
        code, 7,
        "REQUEST_TIMED_OUT on the minority side: {message:?}"
    );
    let majority_leader = &nodes[new_leader as usize - 1];
    kafka::create_topic(&majority_leader.addr(), "majority", 3);
    for node in &majority {
        kcat_sees(node, "majority", Some(3));
    }
    let majority_commit = cluster_doc(majority_leader)["quorum"]["commit_index"].clone();
    assert!(
        majority_commit.as_u64() > minority_commit.as_u64(),
        "the majority commits: {majority_commit} after {minority_commit}"
    );
    let minority_quorum = cluster_doc(minority)["quorum"].clone();
    assert_eq!(
        minority_quorum["commit_index"], minority_commit,
        "the minority never commits: {minority_quorum}"
    );
    let listed = kcat_topics(minority);
    assert!(
        !listed.contains_key("majority") && !listed.contains_key("minority"),
        "{listed:?}"
    );

    // Cut for longer than a broker session: the majority fences the cut node's broker, and
    // the connections to it have stalled long enough for TCP to back off.
    let fenced: Vec<(i64, bool)> = (1..=3).map(|id| (id, id as u64 == cut_id)).collect();
    brokers_become(majority_leader, &fenced);

    lab.heal(cut_id);
    let healed_at = Instant::now();
    let (healed_leader, healed_term) = agreed_leader(&all, &[1, 2, 3]);
    if cut == Cut::Follower {
        // Pre-vote: the follower that timed out while cut off did not raise the term.
        assert_eq!((healed_leader, healed_term), (leader, term), "undisturbed");
    }
    brokers_become(majority_leader, &UNFENCED);
    println!(
        "{cut:?} healed: one leader and every broker unfenced after {:?}",
        healed_at.elapsed()
    );
    let mut topics = images_converge(&all);
    // The refused change is on every node or on none: a cut follower forwarded it to the
    // leader, and TCP may deliver it once healed (REQUEST_TIMED_OUT means "unknown outcome",
    // as in Kafka); a cut leader's own uncommitted entry is overwritten by the new leader's.
    let minority_topic = topics.remove("minority");
    println!("{cut:?}: the refused change applied after healing: {minority_topic:?}");
    assert!(minority_topic.is_none_or(|partitions| partitions == 1));
    let expected: BTreeMap<String, usize> =
        [("before".to_string(), 2), ("majority".to_string(), 3)]
            .into_iter()
            .collect();
    assert_eq!(topics, expected);
}

/// Three network namespaces, each joined by veth pairs to two bridges in the test's own
/// namespace: the controllers' network (which `cut` takes away from one node) and the clients'
/// network (the bridge has an address, so the test reaches every node's Kafka and admin
/// listeners whatever is cut). Names carry a random tag; everything is removed on drop, even
/// when the test fails.
struct NetnsLab {
    tag: String,
    /// `10.A.B.0/24` is the controllers' network, `10.A.B+1.0/24` the clients'.
    subnet: (u8, u8),
    namespaces: Vec<String>,
    /// Devices in the test's namespace (bridges, veth ends), removed after the namespaces.
    devices: Vec<String>,
}

/// The controller port every node uses inside its own namespace.
const NETNS_CONTROLLER_PORT: u16 = 9093;

impl NetnsLab {
    fn new() -> Result<NetnsLab, String> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root".into());
        }
        let random: u32 = rand::random();
        let mut lab = NetnsLab {
            tag: format!("rf{:06x}", random & 0xff_ffff),
            subnet: (128 + (random >> 24) as u8 % 120, (random >> 8) as u8 & 0xfe),
            namespaces: Vec::new(),
            devices: Vec::new(),
        };
        lab.build()?;
        Ok(lab)
    }

    fn build(&mut self) -> Result<(), String> {
        let tag = self.tag.clone();
        let (a, b) = self.subnet;
        for (bridge, address) in [
            (format!("{tag}bc"), None),
            (format!("{tag}bk"), Some(format!("10.{a}.{}.254/24", b + 1))),
        ] {
            ip(&["link", "add", &bridge, "type", "bridge"])?;
            self.devices.push(bridge.clone());
            if let Some(address) = address {
                ip(&["addr", "add", &address, "dev", &bridge])?;
            }
            ip(&["link", "set", &bridge, "up"])?;
        }
        for node in 1..=3u8 {
            let ns = format!("{tag}n{node}");
            ip(&["netns", "add", &ns])?;
            self.namespaces.push(ns.clone());
            for (net, inside, third) in [("c", "ctl0", b), ("k", "cli0", b + 1)] {
                let outside = format!("{tag}{net}{node}");
                ip(&[
                    "link", "add", &outside, "type", "veth", "peer", "name", inside, "netns", &ns,
                ])?;
                self.devices.push(outside.clone());
                ip(&["link", "set", &outside, "master", &format!("{tag}b{net}")])?;
                ip(&["link", "set", &outside, "up"])?;
                let address = format!("10.{a}.{third}.{node}/24");
                ip(&["-n", &ns, "addr", "add", &address, "dev", inside])?;
                ip(&["-n", &ns, "link", "set", inside, "up"])?;
            }
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// Node `node`'s address on the controllers' (`third` = B) or clients' (B+1) network.
    fn address(&self, third: u8, node: u64) -> String {
        format!("10.{}.{third}.{node}", self.subnet.0)
    }

    /// Three combined nodes, one per namespace: controllers on the controllers' network, Kafka
    /// and admin listeners on the clients'.
    fn start_cluster(&self) -> Vec<Broker> {
        let quorum = (1..=3)
            .map(|id| {
                let host = self.address(self.subnet.1, id);
                format!("{id}@{host}:{NETNS_CONTROLLER_PORT}")
            })
            .collect::<Vec<_>>()
            .join(",");
        (1..=3u64)
            .map(|id| {
                Broker::start_with(BrokerOptions {
                    extra_args: vec![
                        "--node-id".into(),
                        id.to_string(),
                        "--controller-quorum".into(),
                        quorum.clone(),
                    ],
                    config_toml: Some(FAST_TICKS_TOML.into()),
                    host: self.address(self.subnet.1 + 1, id),
                    netns: Some(self.namespaces[id as usize - 1].clone()),
                    ..BrokerOptions::default()
                })
            })
            .collect()
    }

    /// Takes node `node` off the controllers' network.
    fn cut(&self, node: u64) {
        let device = format!("{}c{node}", self.tag);
        ip(&["link", "set", &device, "down"]).unwrap_or_else(|e| panic!("{e}"));
    }

    fn heal(&self, node: u64) {
        let device = format!("{}c{node}", self.tag);
        ip(&["link", "set", &device, "up"]).unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for NetnsLab {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("cleaning up: {e}");
            }
        }
        // A veth goes with its namespace end; what is left (bridges) goes now.
        for device in self.devices.iter().rev() {
            let _ = Command::new("ip").args(["link", "del", device]).output();
        }
    }
}

/// Runs `ip ARGS`; its stderr on failure.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = riffle_tests::run_with_timeout(Command::new("ip").args(args), None, COMMAND_TIMEOUT);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
