//! Checks of the kernel, memory and CPU settings: io_uring, resource limits, frequency
//! governor, huge pages, swap, AIO contexts, the clock and isolated cores.

use super::{Finding, Host, Status, FILES_PER_PARTITION, FILES_RESERVED, RINGS_PER_SHARD};
use crate::parse;

/// glommio's rings need these io_uring features (kernel 5.8 and later have them all).
const IO_URING_FEATURES_NEEDED: &[&str] = &["nodrop", "submit_stable", "fast_poll"];
/// At this swappiness and below the kernel swaps only under real memory pressure.
const SWAPPINESS_MAX: i64 = 10;
/// Redpanda's and ScyllaDB's value: enough AIO contexts for every tool on a busy host.
const AIO_MAX_NR_MIN: i64 = 1_048_576;

const LIMITS: &str = "/proc/self/limits";

pub(super) fn io_uring_disabled(h: &Host) -> Finding {
    let path = "/proc/sys/kernel/io_uring_disabled";
    let why_unknown =
        "not present before Linux 6.6 (io_uring cannot be disabled there); see io_uring_features";
    match h.read_int(path) {
        Some(0) => Finding::new(Status::Ok, "0".into(), "0", "io_uring allowed for every process"),
        Some(1) => Finding::new(
            Status::Warn,
            "1".into(),
            "0",
            "only members of kernel.io_uring_group may create rings: run riffle in that group or allow all",
        )
        .fix(path, "0"),
        Some(v) => Finding::new(
            Status::Fail,
            v.to_string(),
            "0",
            "io_uring is disabled: riffle cannot start its shards",
        )
        .fix(path, "0"),
        None => Finding::unknown("0", why_unknown),
    }
}

pub(super) fn io_uring_features(h: &Host) -> Finding {
    let recommended = IO_URING_FEATURES_NEEDED.join(",");
    match &h.probes.io_uring {
        Err(e) => Finding::new(
            Status::Fail,
            format!("ring setup failed: {e}"),
            &recommended,
            "riffle runs every disk and socket operation on io_uring",
        ),
        Ok(features) => {
            let missing: Vec<&str> = IO_URING_FEATURES_NEEDED
                .iter()
                .filter(|f| !features.iter().any(|have| have == *f))
                .copied()
                .collect();
            let current = format!("{} features", features.len());
            if missing.is_empty() {
                Finding::new(
                    Status::Ok,
                    current,
                    &recommended,
                    "a ring starts and has what glommio uses",
                )
            } else {
                let why = format!(
                    "kernel too old: no {}; Linux 5.8+ needed",
                    missing.join(",")
                );
                Finding::new(Status::Fail, current, &recommended, &why)
            }
        }
    }
}

fn mib(bytes: u64) -> String {
    match bytes {
        b if b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b => format!("{} KiB", b >> 10),
    }
}

pub(super) fn memlock(h: &Host) -> Finding {
    let n = &h.needs;
    let need = n.memlock_bytes();
    let recommended = format!(
        ">= {} ({} shards x {RINGS_PER_SHARD} rings x {})",
        mib(need),
        n.shards,
        mib(n.io_memory_bytes)
    );
    let why_source = "of this shell; a service gets LimitMEMLOCK (systemd) or limits.conf memlock";
    let Some(limit) = h
        .src
        .read(LIMITS)
        .and_then(|t| parse::limit(&t, "Max locked memory"))
    else {
        return Finding::unknown(&recommended, why_source);
    };
    match limit.soft {
        None => Finding::new(Status::Ok, "unlimited".into(), &recommended, why_source),
        Some(soft) if soft >= need => Finding::new(Status::Ok, mib(soft), &recommended, why_source),
        Some(soft) => Finding::new(
            Status::Warn,
            mib(soft),
            &recommended,
            "below it (and not root) glommio registers no I/O buffers: every O_DIRECT write pins its pages, 8-15 % more CPU per GB (apply --user writes limits.d)",
        ),
    }
}

pub(super) fn open_files(h: &Host) -> Finding {
    let n = &h.needs;
    let need = n.open_files();
    let recommended = format!(
        ">= {need} ({} partitions x {FILES_PER_PARTITION} + {} connections + {FILES_RESERVED})",
        n.partitions, n.connections
    );
    let Some(limit) = h
        .src
        .read(LIMITS)
        .and_then(|t| parse::limit(&t, "Max open files"))
    else {
        return Finding::unknown(&recommended, "of this shell; a service gets LimitNOFILE");
    };
    match limit.soft {
        Some(soft) if soft < need => Finding::new(
            Status::Fail,
            soft.to_string(),
            &recommended,
            "partitions or connections would fail with EMFILE (apply --user writes limits.d)",
        ),
        soft => Finding::new(
            Status::Ok,
            soft.map_or("unlimited".into(), |s| s.to_string()),
            &recommended,
            "of this shell; a service gets LimitNOFILE (systemd) or limits.conf nofile",
        ),
    }
}

pub(super) fn online_cpus(h: &Host) -> Option<Vec<usize>> {
    h.src
        .read("/sys/devices/system/cpu/online")
        .and_then(|t| parse::cpu_list(&t))
}

pub(super) fn cpu_governor(h: &Host) -> Finding {
    let cpus = online_cpus(h).unwrap_or_default();
    let dir = |c: usize| format!("/sys/devices/system/cpu/cpu{c}/cpufreq");
    let governors: Vec<(usize, String)> = cpus
        .iter()
        .filter_map(|&c| {
            let g = h.src.read(&format!("{}/scaling_governor", dir(c)))?;
            Some((c, g.trim().to_string()))
        })
        .collect();
    if governors.is_empty() {
        return Finding::unknown(
            "performance",
            "no cpufreq in sysfs: a VM or a fixed-frequency CPU",
        );
    }
    let mut kinds: Vec<&str> = governors.iter().map(|(_, g)| g.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let current = kinds.join(",");
    let slow: Vec<usize> = governors
        .iter()
        .filter(|(_, g)| g != "performance")
        .map(|(c, _)| *c)
        .collect();
    if slow.is_empty() {
        return Finding::new(
            Status::Ok,
            current,
            "performance",
            "cores stay at full clock",
        );
    }
    let mut finding = Finding::new(
        Status::Warn,
        current,
        "performance",
        "a core ramping up from idle adds latency to the first requests of a burst",
    );
    for c in slow {
        let available = h
            .src
            .read(&format!("{}/scaling_available_governors", dir(c)))
            .unwrap_or_default();
        if available.split_whitespace().any(|g| g == "performance") {
            finding = finding.fix(&format!("{}/scaling_governor", dir(c)), "performance");
        }
    }
    finding
}

pub(super) fn transparent_hugepages(h: &Host) -> Finding {
    let path = "/sys/kernel/mm/transparent_hugepage/enabled";
    match h.src.read(path).and_then(|t| parse::choice(&t)) {
        None => Finding::unknown("madvise", "THP not configurable here"),
        Some(c) if c.current == "always" => Finding::new(
            Status::Warn,
            c.current,
            "madvise",
            "always: khugepaged compaction stalls threads and inflates small allocations",
        )
        .fix(path, "madvise"),
        Some(c) => Finding::new(
            Status::Ok,
            c.current,
            "madvise",
            "huge pages only where a program asks for them",
        ),
    }
}

pub(super) fn swappiness(h: &Host) -> Finding {
    let path = "/proc/sys/vm/swappiness";
    let recommended = format!("<= {SWAPPINESS_MAX}");
    match h.read_int(path) {
        None => Finding::unknown(&recommended, "cannot read vm.swappiness"),
        Some(v) if v <= SWAPPINESS_MAX => Finding::new(
            Status::Ok,
            v.to_string(),
            &recommended,
            "the broker's memory stays in RAM",
        ),
        Some(v) => Finding::new(
            Status::Warn,
            v.to_string(),
            &recommended,
            "the kernel may swap out broker memory to keep page cache, then stall on it",
        )
        .fix(path, "1"),
    }
}

pub(super) fn aio_max_nr(h: &Host) -> Finding {
    let path = "/proc/sys/fs/aio-max-nr";
    let recommended = format!(">= {AIO_MAX_NR_MIN}");
    match h.read_int(path) {
        None => Finding::unknown(&recommended, "cannot read fs.aio-max-nr"),
        Some(v) if v >= AIO_MAX_NR_MIN => Finding::new(
            Status::Ok,
            v.to_string(),
            &recommended,
            "enough Linux AIO contexts",
        ),
        Some(v) => Finding::new(
            Status::Warn,
            v.to_string(),
            &recommended,
            "AIO contexts for libaio users on the host (riffle itself uses io_uring)",
        )
        .fix(path, &AIO_MAX_NR_MIN.to_string()),
    }
}

pub(super) fn clocksource(h: &Host) -> Finding {
    let dir = "/sys/devices/system/clocksource/clocksource0";
    let good = ["tsc", "kvm-clock", "arch_sys_counter"];
    let Some(current) = h
        .src
        .read(&format!("{dir}/current_clocksource"))
        .map(|t| t.trim().to_string())
    else {
        return Finding::unknown("tsc", "no clocksource in sysfs");
    };
    if good.contains(&current.as_str()) {
        return Finding::new(
            Status::Ok,
            current,
            "tsc",
            "clock_gettime runs in the vDSO, no system call",
        );
    }
    let finding = Finding::new(
        Status::Warn,
        current,
        "tsc",
        "clock_gettime becomes a system call; every timestamp and latency costs one",
    );
    let available = h
        .src
        .read(&format!("{dir}/available_clocksource"))
        .unwrap_or_default();
    if available.split_whitespace().any(|c| c == "tsc") {
        finding.fix(&format!("{dir}/current_clocksource"), "tsc")
    } else {
        finding
    }
}

pub(super) fn isolated_cpus(h: &Host) -> Finding {
    let Some(isolated) = h
        .src
        .read("/sys/devices/system/cpu/isolated")
        .and_then(|t| parse::cpu_list(&t))
    else {
        return Finding::unknown("shard cores isolated", "cannot read the isolated CPU list");
    };
    let shard_cpus = h.broker_cpus();
    let isolated_shards = shard_cpus.iter().filter(|c| isolated.contains(c)).count();
    let current = format!(
        "shards on {}; isolated: {}",
        parse::format_cpu_list(&shard_cpus),
        if isolated.is_empty() {
            "none".into()
        } else {
            parse::format_cpu_list(&isolated)
        }
    );
    let recommended = "shard cores isolated (optional)";
    match (isolated_shards, isolated.is_empty()) {
        (n, _) if n == shard_cpus.len() && n > 0 => Finding::new(
            Status::Ok,
            current,
            recommended,
            "no other task runs on the shards' cores",
        ),
        (0, true) => Finding::new(
            Status::Ok,
            current,
            recommended,
            "other tasks may share the shards' cores; isolcpus=/nohz_full= at boot for the lowest tail",
        ),
        (0, false) => Finding::new(
            Status::Warn,
            current,
            recommended,
            "cores are isolated but the shards would not use them: start riffle under taskset -c",
        ),
        _ => Finding::new(
            Status::Warn,
            current,
            recommended,
            "only some shards' cores are isolated: their latencies will differ",
        ),
    }
}
