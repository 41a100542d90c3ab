//! `riffle-tune check`: one row per OS setting a broker depends on. The checks are a table of
//! small functions; each reads procfs/sysfs text through a `Source`, hands it to a parser in
//! `parse.rs`, and says what it found, what Riffle wants, and why.

mod disk;
#[cfg(test)]
mod fixtures;
mod kernel;
mod net;

use serde::Serialize;

use crate::parse::Mount;
use crate::source::Source;

pub(crate) use disk::Disk;

#[derive(Serialize, Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    Ok,
    Unknown,
    Warn,
    Fail,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Unknown => "unknown",
        }
    }
}

/// A change `apply` can make at run time: write `value` to the procfs/sysfs file `path`.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fix {
    pub path: String,
    pub value: String,
}

/// What one check found.
#[derive(Debug)]
pub(crate) struct Finding {
    pub current: String,
    pub recommended: String,
    pub status: Status,
    pub why: String,
    pub fixes: Vec<Fix>,
}

impl Finding {
    pub(crate) fn new(status: Status, current: String, recommended: &str, why: &str) -> Self {
        Finding {
            current,
            recommended: recommended.to_string(),
            status,
            why: why.to_string(),
            fixes: Vec::new(),
        }
    }

    /// A value that could not be read: never a guess.
    pub(crate) fn unknown(recommended: &str, why: &str) -> Self {
        Finding::new(Status::Unknown, "unknown".into(), recommended, why)
    }

    pub(crate) fn fix(mut self, path: &str, value: &str) -> Self {
        self.fixes.push(Fix {
            path: path.to_string(),
            value: value.to_string(),
        });
        self
    }
}

/// One row of the table, as printed and as written by `--json`.
#[derive(Serialize, Debug)]
pub(crate) struct Row {
    pub name: &'static str,
    pub current: String,
    pub recommended: String,
    pub status: Status,
    pub why: String,
    /// What `apply` would write; empty when the setting cannot be changed at run time.
    pub fixes: Vec<Fix>,
}

/// What the broker will ask of the machine, from its configuration.
#[derive(Debug, Clone)]
pub(crate) struct BrokerNeeds {
    pub shards: usize,
    pub io_memory_bytes: u64,
    pub partitions: u64,
    pub connections: u64,
}

/// glommio locks three rings' io memory per shard (main, latency and poll rings).
pub(crate) const RINGS_PER_SHARD: u64 = 3;
/// Files a partition holds open: the active segment's log, offset index and time index, plus
/// one older segment being read.
pub(crate) const FILES_PER_PARTITION: u64 = 4;
/// Files the broker holds besides partitions and connections: listeners, rings, eventfds,
/// metadata, the consumer-offsets logs, standard streams.
pub(crate) const FILES_RESERVED: u64 = 256;

impl BrokerNeeds {
    /// Locked memory the shards' rings need (the README's "3 x io_memory_bytes per shard").
    pub(crate) fn memlock_bytes(&self) -> u64 {
        self.shards as u64 * RINGS_PER_SHARD * self.io_memory_bytes
    }

    /// Open files for the configured partitions and connections.
    pub(crate) fn open_files(&self) -> u64 {
        self.partitions * FILES_PER_PARTITION + self.connections + FILES_RESERVED
    }
}

/// What cannot be read as text and was found by trying (system calls on this machine).
#[derive(Debug, Clone)]
pub(crate) struct Probes {
    /// The io_uring features a ring reports, or why setting one up failed.
    pub io_uring: Result<Vec<String>, String>,
    /// The existing directory examined for the data dir (itself or its nearest ancestor).
    pub data_path: String,
    /// Its device number (major, minor).
    pub data_dev: Option<(u64, u64)>,
    /// Opening a file with O_DIRECT there, and fallocating it: `None` when not tried.
    pub o_direct: Option<Result<(), String>>,
    pub fallocate: Option<Result<(), String>>,
    /// The CPUs this process may run on; a broker started the same way inherits them.
    pub allowed_cpus: Vec<usize>,
}

/// Everything a check may look at.
pub(crate) struct Host<'a> {
    pub src: &'a dyn Source,
    pub probes: Probes,
    pub needs: BrokerNeeds,
    pub disk: Option<Disk>,
    pub mount: Option<Mount>,
}

impl<'a> Host<'a> {
    pub(crate) fn new(src: &'a dyn Source, probes: Probes, needs: BrokerNeeds) -> Self {
        let disk = probes.data_dev.and_then(|dev| Disk::find(src, dev));
        let mount = src.read("/proc/self/mountinfo").and_then(|text| {
            crate::parse::mount_for(&crate::parse::mountinfo(&text), &probes.data_path).cloned()
        });
        Host {
            src,
            probes,
            needs,
            disk,
            mount,
        }
    }

    /// The CPUs the broker's shards will be pinned to: the first `shards` allowed ones.
    pub(crate) fn broker_cpus(&self) -> Vec<usize> {
        let cpus = &self.probes.allowed_cpus;
        cpus[..self.needs.shards.min(cpus.len())].to_vec()
    }

    pub(crate) fn read_int(&self, path: &str) -> Option<i64> {
        self.src
            .read(path)
            .and_then(|t| crate::parse::sysctl_int(&t))
    }
}

type CheckFn = fn(&Host) -> Finding;

/// Every check, in the order printed. Adding a check is one function and one line here.
const CHECKS: &[(&str, CheckFn)] = &[
    ("kernel.io_uring_disabled", kernel::io_uring_disabled),
    ("io_uring_features", kernel::io_uring_features),
    ("memlock", kernel::memlock),
    ("open_files", kernel::open_files),
    ("cpu_governor", kernel::cpu_governor),
    ("transparent_hugepages", kernel::transparent_hugepages),
    ("vm.swappiness", kernel::swappiness),
    ("fs.aio-max-nr", kernel::aio_max_nr),
    ("clocksource", kernel::clocksource),
    ("isolated_cpus", kernel::isolated_cpus),
    ("disk_scheduler", disk::scheduler),
    ("disk_nomerges", disk::nomerges),
    ("disk_rq_affinity", disk::rq_affinity),
    ("disk_write_cache", disk::write_cache),
    ("disk_fua", disk::fua),
    ("disk_rotational", disk::rotational),
    ("disk_discard", disk::discard),
    ("filesystem", disk::filesystem),
    ("o_direct", disk::o_direct),
    ("fallocate", disk::fallocate),
    ("nic_irq_spread", net::irq_spread),
    ("nic_rps_xps", net::rps_xps),
    ("net.core.somaxconn", net::somaxconn),
    ("net.ipv4.tcp_max_syn_backlog", net::tcp_max_syn_backlog),
];

/// Runs every check against `host`.
pub(crate) fn run(host: &Host) -> Vec<Row> {
    CHECKS
        .iter()
        .map(|(name, check)| {
            let f = check(host);
            Row {
                name,
                current: f.current,
                recommended: f.recommended,
                status: f.status,
                why: f.why,
                fixes: f.fixes,
            }
        })
        .collect()
}

/// The rows as an aligned text table.
pub(crate) fn table(rows: &[Row]) -> String {
    let header = ["NAME", "CURRENT", "RECOMMENDED", "STATUS", "WHY"];
    let cells: Vec<[&str; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.name,
                r.current.as_str(),
                r.recommended.as_str(),
                r.status.as_str(),
                r.why.as_str(),
            ]
        })
        .collect();
    let width = |i: usize| {
        cells
            .iter()
            .map(|c| c[i].chars().count())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths = [width(0), width(1), width(2), width(3)];
    let line = |c: [&str; 5]| {
        let mut s = String::new();
        for (i, w) in widths.iter().enumerate() {
            s.push_str(&format!("{:<w$}  ", c[i], w = *w));
        }
        s.push_str(c[4]);
        s.trim_end().to_string() + "\n"
    };
    std::iter::once(line(header))
        .chain(cells.into_iter().map(line))
        .collect()
}

/// The rows as the JSON document `check --json` prints.
pub(crate) fn json(rows: &[Row]) -> serde_json::Value {
    let count = |s: Status| rows.iter().filter(|r| r.status == s).count();
    serde_json::json!({
        "checks": rows,
        "summary": {
            "ok": count(Status::Ok),
            "warn": count(Status::Warn),
            "fail": count(Status::Fail),
            "unknown": count(Status::Unknown),
        }
    })
}
