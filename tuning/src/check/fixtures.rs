//! Every check run against files recorded on machines unlike each other: this 2-core VM with a
//! virtio disk, an NVMe server, a server with a spinning disk and io_uring disabled, and a
//! machine where nothing can be read.

use super::*;
use crate::source::RecordedSource;

const LIMITS_8MIB: &str = "\
Limit                     Soft Limit           Hard Limit           Units
Max open files            1048576              1048576              files
Max locked memory         8388608              8388608              bytes
";

/// This VM (recorded 2026-12-02): a virtio disk `vda` that calls itself rotational, with
/// mq-deadline, ext4 mounted with online discard, THP madvise, no cpufreq, a virtio NIC whose
/// IRQs live on its PCI parent and whose tx queue has no xps_cpus.
const VM: &[(&str, &str)] = &[
    ("/proc/sys/kernel/io_uring_disabled", "0\n"),
    ("/proc/self/limits", LIMITS_8MIB),
    ("/sys/devices/system/cpu/online", "0-1\n"),
    ("/sys/devices/system/cpu/isolated", "\n"),
    ("/sys/kernel/mm/transparent_hugepage/enabled", "always [madvise] never\n"),
    ("/proc/sys/vm/swappiness", "60\n"),
    ("/proc/sys/fs/aio-max-nr", "65536\n"),
    ("/sys/devices/system/clocksource/clocksource0/current_clocksource", "tsc\n"),
    ("/sys/dev/block/254:0/uevent", "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n"),
    ("/sys/block/vda/queue/scheduler", "none [mq-deadline] kyber bfq \n"),
    ("/sys/block/vda/queue/nomerges", "0\n"),
    ("/sys/block/vda/queue/rq_affinity", "1\n"),
    ("/sys/block/vda/queue/write_cache", "write back\n"),
    ("/sys/block/vda/queue/fua", "0\n"),
    ("/sys/block/vda/queue/rotational", "1\n"),
    ("/sys/block/vda/queue/discard_max_bytes", "1073741824\n"),
    (
        "/proc/self/mountinfo",
        "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
         27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534\n",
    ),
    ("/sys/class/net/eth0/device/vendor", "0x1af4\n"),
    ("/sys/class/net/eth0/device/../msi_irqs/37", "msix\n"),
    ("/sys/class/net/eth0/device/../msi_irqs/38", "msix\n"),
    ("/sys/class/net/eth0/device/../msi_irqs/39", "msix\n"),
    ("/sys/class/net/eth0/queues/rx-0/rps_cpus", "0\n"),
    ("/sys/class/net/eth0/queues/tx-0/byte_queue_limits/limit", "0\n"),
    ("/sys/class/net/lo/queues/rx-0/rps_cpus", "0\n"),
    (
        "/proc/interrupts",
        "           CPU0       CPU1\n \
         37:          0          0 PCI-MSIX-0000:00:03.0   0-edge      virtio2-config\n \
         38:          0       2035 PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0\n \
         39:       1803          0 PCI-MSIX-0000:00:03.0   2-edge      virtio2-output.0\n",
    ),
    ("/proc/sys/net/core/somaxconn", "4096\n"),
    ("/proc/sys/net/ipv4/tcp_max_syn_backlog", "2048\n"),
];

/// A 2-core NVMe server tuned as recommended; the data dir on a partition of nvme0n1.
const NVME: &[(&str, &str)] = &[
    ("/proc/sys/kernel/io_uring_disabled", "0\n"),
    ("/proc/self/limits", "Max open files   1048576   1048576   files\nMax locked memory   unlimited   unlimited   bytes\n"),
    ("/sys/devices/system/cpu/online", "0-1\n"),
    ("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", "performance\n"),
    ("/sys/devices/system/cpu/cpu1/cpufreq/scaling_governor", "performance\n"),
    ("/sys/kernel/mm/transparent_hugepage/enabled", "always madvise [never]\n"),
    ("/sys/dev/block/259:1/uevent", "MAJOR=259\nMINOR=1\nDEVNAME=nvme0n1p1\nDEVTYPE=partition\n"),
    ("/sys/dev/block/259:1/../uevent", "MAJOR=259\nMINOR=0\nDEVNAME=nvme0n1\nDEVTYPE=disk\n"),
    ("/sys/block/nvme0n1/queue/scheduler", "[none] mq-deadline kyber\n"),
    ("/sys/block/nvme0n1/queue/nomerges", "2\n"),
    ("/sys/block/nvme0n1/queue/rq_affinity", "2\n"),
    ("/sys/block/nvme0n1/queue/write_cache", "write back\n"),
    ("/sys/block/nvme0n1/queue/fua", "1\n"),
    ("/sys/block/nvme0n1/queue/rotational", "0\n"),
    ("/sys/block/nvme0n1/queue/discard_max_bytes", "2199023255040\n"),
    ("/proc/self/mountinfo", "41 22 259:1 / /var/lib/riffle rw,noatime - xfs /dev/nvme0n1p1 rw,discard\n"),
];

/// An old server: a spinning SATA disk with mq-deadline, io_uring disabled by the admin, THP
/// always, powersave governor, HPET clock.
const SPINNING: &[(&str, &str)] = &[
    ("/proc/sys/kernel/io_uring_disabled", "2\n"),
    ("/sys/devices/system/cpu/online", "0\n"),
    (
        "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
        "powersave\n",
    ),
    (
        "/sys/devices/system/cpu/cpu0/cpufreq/scaling_available_governors",
        "performance powersave\n",
    ),
    (
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "[always] madvise never\n",
    ),
    (
        "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        "hpet\n",
    ),
    (
        "/sys/devices/system/clocksource/clocksource0/available_clocksource",
        "tsc hpet acpi_pm\n",
    ),
    (
        "/sys/dev/block/8:1/uevent",
        "MAJOR=8\nMINOR=1\nDEVNAME=sda1\nDEVTYPE=partition\n",
    ),
    (
        "/sys/dev/block/8:1/../uevent",
        "MAJOR=8\nMINOR=0\nDEVNAME=sda\nDEVTYPE=disk\n",
    ),
    ("/sys/block/sda/queue/scheduler", "[mq-deadline] none\n"),
    ("/sys/block/sda/queue/nomerges", "0\n"),
    ("/sys/block/sda/queue/rotational", "1\n"),
    ("/sys/block/sda/queue/write_cache", "write through\n"),
    ("/sys/block/sda/queue/fua", "0\n"),
    (
        "/proc/self/mountinfo",
        "30 22 8:1 / /data rw - tmpfs tmpfs rw\n",
    ),
];

fn probes(dev: (u64, u64), data_path: &str) -> Probes {
    Probes {
        io_uring: Ok(vec![
            "nodrop".into(),
            "submit_stable".into(),
            "fast_poll".into(),
        ]),
        data_path: data_path.into(),
        data_dev: Some(dev),
        o_direct: Some(Ok(())),
        fallocate: Some(Ok(())),
        allowed_cpus: vec![0, 1],
    }
}

fn needs(shards: usize) -> BrokerNeeds {
    BrokerNeeds {
        shards,
        io_memory_bytes: 1 << 20,
        partitions: 1000,
        connections: 1000,
    }
}

fn rows(files: &[(&str, &str)], probes: Probes, shards: usize) -> Vec<Row> {
    let src = RecordedSource::new(files);
    run(&Host::new(&src, probes, needs(shards)))
}

fn get<'a>(rows: &'a [Row], name: &str) -> &'a Row {
    rows.iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no row {name}"))
}

fn fix_values(row: &Row) -> Vec<(&str, &str)> {
    row.fixes
        .iter()
        .map(|f| (f.path.as_str(), f.value.as_str()))
        .collect()
}

#[test]
fn this_vm_keeps_mq_deadline_for_a_disk_that_says_it_spins_and_wants_rps() {
    let r = rows(VM, probes((254, 0), "/work"), 2);
    let sched = get(&r, "disk_scheduler");
    assert_eq!(
        (sched.status, sched.current.as_str()),
        (Status::Ok, "vda: mq-deadline")
    );
    assert!(sched.fixes.is_empty());
    assert_eq!(get(&r, "disk_rotational").status, Status::Warn);
    assert_eq!(get(&r, "disk_nomerges").status, Status::Ok);
    let rq = get(&r, "disk_rq_affinity");
    assert_eq!(fix_values(rq), [("/sys/block/vda/queue/rq_affinity", "2")]);
    assert_eq!(get(&r, "disk_fua").status, Status::Warn);
    assert_eq!(
        get(&r, "disk_discard").current,
        "supported, mounted with discard"
    );
    assert_eq!(get(&r, "kernel.io_uring_disabled").status, Status::Ok);
    assert_eq!(get(&r, "transparent_hugepages").status, Status::Ok);
    assert_eq!(get(&r, "cpu_governor").status, Status::Unknown);
    assert_eq!(get(&r, "memlock").status, Status::Ok);
    assert_eq!(get(&r, "filesystem").current, "ext4 on /");
    let swap = get(&r, "vm.swappiness");
    assert_eq!(fix_values(swap), [("/proc/sys/vm/swappiness", "1")]);
    let irq = get(&r, "nic_irq_spread");
    assert_eq!(
        (irq.status, irq.current.as_str()),
        (Status::Ok, "eth0: 2 active IRQs on cores 0-1")
    );
    let rps = get(&r, "nic_rps_xps");
    assert_eq!(rps.status, Status::Warn);
    assert_eq!(
        fix_values(rps),
        [("/sys/class/net/eth0/queues/rx-0/rps_cpus", "00000003")]
    );
    assert_eq!(get(&r, "net.ipv4.tcp_max_syn_backlog").status, Status::Warn);
    assert_eq!(get(&r, "net.core.somaxconn").status, Status::Ok);
    assert_eq!(get(&r, "isolated_cpus").status, Status::Ok);
}

#[test]
fn an_ssd_that_says_so_gets_none_proposed() {
    let mut files = VM.to_vec();
    files.retain(|(p, _)| !p.ends_with("/rotational"));
    files.push(("/sys/block/vda/queue/rotational", "0\n"));
    let r = rows(&files, probes((254, 0), "/"), 2);
    let sched = get(&r, "disk_scheduler");
    assert_eq!(
        (sched.status, sched.recommended.as_str()),
        (Status::Warn, "none")
    );
    assert_eq!(
        fix_values(sched),
        [("/sys/block/vda/queue/scheduler", "none")]
    );
    assert_eq!(
        fix_values(get(&r, "disk_nomerges")),
        [("/sys/block/vda/queue/nomerges", "2")]
    );
}

#[test]
fn nvme_with_none_on_a_partition_is_as_recommended() {
    let r = rows(NVME, probes((259, 1), "/var/lib/riffle/data"), 2);
    let sched = get(&r, "disk_scheduler");
    assert_eq!(
        (sched.status, sched.current.as_str()),
        (Status::Ok, "nvme0n1: none")
    );
    for name in [
        "disk_nomerges",
        "disk_rq_affinity",
        "disk_write_cache",
        "disk_fua",
        "disk_rotational",
    ] {
        assert_eq!(get(&r, name).status, Status::Ok, "{name}");
        assert!(get(&r, name).fixes.is_empty(), "{name}");
    }
    assert_eq!(get(&r, "cpu_governor").current, "performance");
    assert_eq!(get(&r, "memlock").current, "unlimited");
    assert_eq!(get(&r, "filesystem").current, "xfs on /var/lib/riffle");
    // Mounted with online discard: flagged.
    assert_eq!(get(&r, "disk_discard").status, Status::Warn);
}

#[test]
fn spinning_disk_with_io_uring_disabled_fails_and_proposes_fixes() {
    let r = rows(SPINNING, probes((8, 1), "/data"), 1);
    let sched = get(&r, "disk_scheduler");
    assert_eq!(
        (sched.status, sched.recommended.as_str()),
        (Status::Ok, "mq-deadline")
    );
    assert_eq!(get(&r, "disk_nomerges").status, Status::Ok);
    assert_eq!(get(&r, "disk_rotational").status, Status::Warn);
    assert_eq!(get(&r, "disk_fua").status, Status::Ok);
    let io_uring = get(&r, "kernel.io_uring_disabled");
    assert_eq!(io_uring.status, Status::Fail);
    assert_eq!(
        fix_values(io_uring),
        [("/proc/sys/kernel/io_uring_disabled", "0")]
    );
    let thp = get(&r, "transparent_hugepages");
    assert_eq!((thp.status, thp.current.as_str()), (Status::Warn, "always"));
    assert_eq!(
        fix_values(thp),
        [("/sys/kernel/mm/transparent_hugepage/enabled", "madvise")]
    );
    let gov = get(&r, "cpu_governor");
    assert_eq!(
        fix_values(gov),
        [(
            "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
            "performance"
        )]
    );
    let clock = get(&r, "clocksource");
    assert_eq!(
        (clock.status, fix_values(clock)[0].1),
        (Status::Warn, "tsc")
    );
    assert_eq!(get(&r, "filesystem").status, Status::Fail);
}

#[test]
fn nothing_readable_means_unknown_never_a_guess() {
    let mut p = probes((254, 0), "/x");
    p.o_direct = None;
    p.fallocate = None;
    let r = rows(&[], p, 2);
    for row in &r {
        if row.name == "io_uring_features" {
            continue;
        }
        assert_eq!(row.status, Status::Unknown, "{}: {}", row.name, row.current);
        assert!(row.fixes.is_empty(), "{}", row.name);
    }
}

#[test]
fn memlock_grows_with_shards_and_io_memory() {
    let r = rows(VM, probes((254, 0), "/"), 2);
    assert_eq!(get(&r, "memlock").status, Status::Ok);
    let r = rows(VM, probes((254, 0), "/"), 4);
    let m = get(&r, "memlock");
    // The broker still runs below it, without registered buffers.
    assert_eq!(m.status, Status::Warn);
    assert!(m.recommended.starts_with(">= 12 MiB"), "{}", m.recommended);
}

#[test]
fn a_failed_ring_and_a_refused_o_direct_fail() {
    let mut p = probes((254, 0), "/");
    p.io_uring = Err("Operation not permitted (os error 1)".into());
    p.o_direct = Some(Err("O_DIRECT refused (EINVAL)".into()));
    let r = rows(VM, p, 2);
    assert_eq!(get(&r, "io_uring_features").status, Status::Fail);
    assert_eq!(get(&r, "o_direct").status, Status::Fail);
    assert_eq!(get(&r, "fallocate").status, Status::Ok);
}

#[test]
fn irqs_piled_on_one_core_warn_and_isolated_cores_unused_warn() {
    let mut files = VM.to_vec();
    files.retain(|(p, _)| *p != "/proc/interrupts" && *p != "/sys/devices/system/cpu/isolated");
    files.push((
        "/proc/interrupts",
        "  CPU0 CPU1\n 37: 5 0 x\n 38: 7 0 x\n 39: 9 0 x\n",
    ));
    files.push(("/sys/devices/system/cpu/isolated", "2-3\n"));
    let r = rows(&files, probes((254, 0), "/"), 2);
    let irq = get(&r, "nic_irq_spread");
    assert_eq!(
        (irq.status, irq.current.as_str()),
        (Status::Warn, "eth0: 3 active IRQs on cores 0")
    );
    assert_eq!(get(&r, "isolated_cpus").status, Status::Warn);
}

#[test]
fn table_and_json_have_a_row_per_check() {
    let r = rows(VM, probes((254, 0), "/"), 2);
    assert_eq!(r.len(), CHECKS.len());
    let text = table(&r);
    assert_eq!(text.lines().count(), r.len() + 1);
    assert!(text.starts_with("NAME"));
    let json = json(&r);
    assert_eq!(json["checks"].as_array().unwrap().len(), r.len());
    let counted: u64 = ["ok", "warn", "fail", "unknown"]
        .iter()
        .map(|k| json["summary"][k].as_u64().unwrap())
        .sum();
    assert_eq!(counted as usize, r.len());
}
