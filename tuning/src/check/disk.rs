//! Checks of the block device and file system under the data dir: the queue settings in
//! `/sys/block/<disk>/queue`, the mount from `/proc/self/mountinfo`, and whether O_DIRECT and
//! fallocate work there (tried, since no file says so).

use super::{Finding, Host, Status};
use crate::parse;

/// The whole disk holding the data dir (the parent of a partition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Disk {
    pub name: String,
    pub queue_dir: String,
}

impl Disk {
    /// Finds the disk of device `major:minor` through `/sys/dev/block`; `None` for devices
    /// with no block device behind them (tmpfs, overlay, btrfs subvolumes).
    pub(crate) fn find(src: &dyn super::Source, (major, minor): (u64, u64)) -> Option<Disk> {
        let dev_dir = format!("/sys/dev/block/{major}:{minor}");
        let uevent = parse::key_values(&src.read(&format!("{dev_dir}/uevent"))?);
        let name = if uevent.get("DEVTYPE").map(String::as_str) == Some("partition") {
            let parent = parse::key_values(&src.read(&format!("{dev_dir}/../uevent"))?);
            parent.get("DEVNAME")?.clone()
        } else {
            uevent.get("DEVNAME")?.clone()
        };
        let queue_dir = format!("/sys/block/{name}/queue");
        Some(Disk { name, queue_dir })
    }
}

const NO_DISK: &str = "the data dir has no block device in sysfs (tmpfs, overlay, network fs?)";

/// The path of `queue/<file>` of the data dir's disk and its trimmed contents; `None` when
/// there is no disk or the file cannot be read.
fn read_queue(h: &Host, file: &str) -> Option<(String, String)> {
    let path = format!("{}/{file}", h.disk.as_ref()?.queue_dir);
    let value = h.src.read(&path)?.trim().to_string();
    Some((path, value))
}

fn is_rotational(h: &Host) -> Option<bool> {
    read_queue(h, "rotational").map(|(_, v)| v == "1")
}

/// Why a disk value is unknown: no disk at all, or the file is missing.
fn unknown(h: &Host, recommended: &str, file: &str) -> Finding {
    match &h.disk {
        None => Finding::unknown(recommended, NO_DISK),
        Some(d) => Finding::unknown(recommended, &format!("cannot read {}/{file}", d.queue_dir)),
    }
}

pub(super) fn scheduler(h: &Host) -> Finding {
    let rotational = is_rotational(h);
    let recommended = if rotational == Some(true) {
        "mq-deadline"
    } else {
        "none"
    };
    let Some((path, text)) = read_queue(h, "scheduler") else {
        return unknown(h, recommended, "scheduler");
    };
    let Some(choice) = parse::choice(&text) else {
        return unknown(h, recommended, "scheduler");
    };
    let name = h.disk.as_ref().map_or("", |d| d.name.as_str());
    let current = format!("{name}: {}", choice.current);
    if choice.current == recommended {
        let why = match rotational {
            Some(true) => "a spinning disk gains from sorted, merged requests",
            _ => "a flash device orders requests itself; a scheduler only adds CPU and latency",
        };
        return Finding::new(Status::Ok, current, recommended, why);
    }
    let finding = Finding::new(
        Status::Warn,
        current,
        recommended,
        match rotational {
            Some(true) => "a spinning disk wants requests sorted by position",
            _ => "on flash (NVMe, SSD, virtio) a scheduler only adds CPU and latency",
        },
    );
    if choice.available.iter().any(|a| a == recommended) {
        finding.fix(&path, recommended)
    } else {
        finding
    }
}

pub(super) fn nomerges(h: &Host) -> Finding {
    let rotational = is_rotational(h) == Some(true);
    let recommended = if rotational { "0" } else { "2" };
    let Some((path, value)) = read_queue(h, "nomerges") else {
        return unknown(h, recommended, "nomerges");
    };
    if value == recommended {
        return Finding::new(
            Status::Ok,
            value,
            recommended,
            "as recommended for this device",
        );
    }
    let why = if rotational {
        "merging adjacent requests saves seeks on a spinning disk"
    } else {
        "riffle already writes large aligned chunks; merge lookups only cost CPU"
    };
    Finding::new(Status::Warn, value, recommended, why).fix(&path, recommended)
}

pub(super) fn rq_affinity(h: &Host) -> Finding {
    let Some((path, value)) = read_queue(h, "rq_affinity") else {
        return unknown(h, "2", "rq_affinity");
    };
    if value == "2" {
        return Finding::new(
            Status::Ok,
            value,
            "2",
            "completions run on the core that submitted, the shard's own",
        );
    }
    Finding::new(
        Status::Warn,
        value,
        "2",
        "completions may run on another core than the shard that submitted",
    )
    .fix(&path, "2")
}

pub(super) fn write_cache(h: &Host) -> Finding {
    let recommended = "as the device reports";
    match read_queue(h, "write_cache") {
        None => unknown(h, recommended, "write_cache"),
        Some((_, v)) if v == "write back" => Finding::new(
            Status::Ok,
            v,
            recommended,
            "volatile cache: each fdatasync also flushes it, so acks=all survives power loss",
        ),
        Some((_, v)) if v == "write through" => Finding::new(
            Status::Ok,
            v,
            recommended,
            "no volatile cache (or declared so): never force this on a disk that has one",
        ),
        Some((_, v)) => Finding::new(Status::Unknown, v, recommended, "unexpected value"),
    }
}

pub(super) fn fua(h: &Host) -> Finding {
    let write_back = read_queue(h, "write_cache").is_some_and(|(_, v)| v == "write back");
    match read_queue(h, "fua") {
        None => unknown(h, "1", "fua"),
        Some((_, v)) if v == "1" => Finding::new(
            Status::Ok,
            v,
            "1",
            "forced unit access: a sync writes through the cache without a full flush",
        ),
        Some((_, v)) if write_back => Finding::new(
            Status::Warn,
            v,
            "1",
            "no FUA with a write-back cache: each fdatasync flushes the whole device cache",
        ),
        Some((_, v)) => Finding::new(Status::Ok, v, "1", "no FUA, but no volatile cache to flush"),
    }
}

pub(super) fn rotational(h: &Host) -> Finding {
    match read_queue(h, "rotational") {
        None => unknown(h, "0", "rotational"),
        Some((_, v)) if v == "0" => Finding::new(
            Status::Ok,
            v,
            "0",
            "flash: fdatasync in microseconds to a millisecond",
        ),
        Some((_, v)) => Finding::new(
            Status::Warn,
            v,
            "0",
            "a spinning disk: each fdatasync waits for the platter, acks=all throughput is low",
        ),
    }
}

pub(super) fn discard(h: &Host) -> Finding {
    let recommended = "periodic fstrim, no discard mount option";
    let Some((_, max)) = read_queue(h, "discard_max_bytes") else {
        return unknown(h, recommended, "discard_max_bytes");
    };
    let online = h
        .mount
        .as_ref()
        .is_some_and(|m| m.options.iter().any(|o| o == "discard"));
    let supported = max.parse::<u64>().is_ok_and(|m| m > 0);
    let current = match (supported, online) {
        (false, _) => "not supported".to_string(),
        (true, true) => "supported, mounted with discard".to_string(),
        (true, false) => "supported".to_string(),
    };
    if supported && online {
        return Finding::new(
            Status::Warn,
            current,
            recommended,
            "online discard makes segment deletion stall I/O; trim with fstrim.timer instead",
        );
    }
    Finding::new(
        Status::Ok,
        current,
        recommended,
        "deleted segments are trimmed in batches (fstrim), not inline",
    )
}

pub(super) fn filesystem(h: &Host) -> Finding {
    let recommended = "xfs or ext4";
    let Some(mount) = &h.mount else {
        return Finding::unknown(recommended, "no mount found for the data dir in mountinfo");
    };
    let current = format!("{} on {}", mount.fs_type, mount.mount_point);
    let (status, why) = match mount.fs_type.as_str() {
        "xfs" | "ext4" => (Status::Ok, "extents, fallocate and O_DIRECT as riffle uses them"),
        "tmpfs" | "ramfs" => (
            Status::Fail,
            "memory, not a disk: glommio silently falls back to buffered I/O and nothing survives a reboot",
        ),
        "nfs" | "nfs4" | "cifs" | "fuse" | "overlay" => (
            Status::Fail,
            "not a local disk file system: O_DIRECT and fdatasync semantics are not what riffle needs",
        ),
        _ => (Status::Warn, "untested with riffle: prefer xfs or ext4"),
    };
    Finding::new(status, current, recommended, why)
}

/// A probe result as a finding.
fn probed(probe: &Option<Result<(), String>>, path: &str, ok_why: &str, fail_why: &str) -> Finding {
    match probe {
        None => Finding::unknown(
            "works",
            "not tried: this user cannot create files in the data dir (run check as the broker's user)",
        ),
        Some(Ok(())) => Finding::new(Status::Ok, format!("works in {path}"), "works", ok_why),
        Some(Err(e)) => Finding::new(Status::Fail, e.clone(), "works", fail_why),
    }
}

pub(super) fn o_direct(h: &Host) -> Finding {
    probed(
        &h.probes.o_direct,
        &h.probes.data_path,
        "segments are written around the page cache",
        "segment writes need O_DIRECT",
    )
}

pub(super) fn fallocate(h: &Host) -> Finding {
    probed(
        &h.probes.fallocate,
        &h.probes.data_path,
        "segments are reserved ahead so fdatasync rarely carries metadata",
        "without fallocate every append grows the file and each fdatasync writes metadata",
    )
}
