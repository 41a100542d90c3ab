//! Checks of the network: how the NICs' interrupts and receive work spread over the cores, and
//! the listen and SYN backlogs that bound a burst of new connections.

use super::kernel::online_cpus;
use super::{Finding, Host, Status};
use crate::parse;

/// Backlogs below this drop connections when many clients reconnect at once (after a restart).
const BACKLOG_MIN: i64 = 4096;

/// Interfaces backed by a device (physical or virtio NICs); `lo`, bridges and the like have no
/// `device` link in sysfs.
fn nics(h: &Host) -> Vec<String> {
    h.src
        .list("/sys/class/net")
        .unwrap_or_default()
        .into_iter()
        .filter(|nic| {
            h.src
                .list(&format!("/sys/class/net/{nic}/device"))
                .is_some()
        })
        .collect()
}

/// The MSI IRQ numbers of a NIC: on its PCI device, or on the PCI parent of a virtio device.
fn nic_irqs(h: &Host, nic: &str) -> Vec<u32> {
    let device = format!("/sys/class/net/{nic}/device");
    [
        format!("{device}/msi_irqs"),
        format!("{device}/../msi_irqs"),
    ]
    .iter()
    .find_map(|dir| h.src.list(dir))
    .unwrap_or_default()
    .iter()
    .filter_map(|irq| irq.parse().ok())
    .collect()
}

/// The worst of the per-NIC results, their current values joined.
fn combine(parts: Vec<(Status, String)>, recommended: &str, why: &str) -> Finding {
    let status = parts
        .iter()
        .map(|(s, _)| *s)
        .max()
        .unwrap_or(Status::Unknown);
    let current: Vec<String> = parts.into_iter().map(|(_, c)| c).collect();
    Finding::new(status, current.join("; "), recommended, why)
}

pub(super) fn irq_spread(h: &Host) -> Finding {
    let recommended = "active IRQs on distinct cores";
    let counts = h
        .src
        .read("/proc/interrupts")
        .map(|t| parse::interrupts(&t))
        .unwrap_or_default();
    let cores = online_cpus(h).map_or(1, |c| c.len().max(1));
    let mut parts = Vec::new();
    for nic in nics(h) {
        let irqs = nic_irqs(h, &nic);
        if irqs.is_empty() || counts.is_empty() {
            parts.push((Status::Unknown, format!("{nic}: IRQs not visible")));
            continue;
        }
        let active: Vec<&Vec<u64>> = irqs
            .iter()
            .filter_map(|irq| counts.get(irq))
            .filter(|c| c.iter().any(|&n| n > 0))
            .collect();
        let mut serving: Vec<usize> = active
            .iter()
            .flat_map(|c| {
                c.iter()
                    .enumerate()
                    .filter(|(_, &n)| n > 0)
                    .map(|(cpu, _)| cpu)
            })
            .collect();
        serving.sort_unstable();
        serving.dedup();
        let wanted = active.len().min(cores);
        let status = if serving.len() >= wanted {
            Status::Ok
        } else {
            Status::Warn
        };
        parts.push((
            status,
            format!(
                "{nic}: {} active IRQs on cores {}",
                active.len(),
                parse::format_cpu_list(&serving)
            ),
        ));
    }
    if parts.is_empty() {
        return Finding::unknown(recommended, "no NIC with a device in /sys/class/net");
    }
    combine(
        parts,
        recommended,
        "IRQs piled on one core steal it from its shard; irqbalance or /proc/irq/N/smp_affinity_list spread them",
    )
}

/// RPS for one NIC: the masks of its receive queues, and the fixes that spread the receive work
/// of a NIC with fewer queues than cores over every core.
fn rps_for(h: &Host, nic: &str, cores: &[usize]) -> (Status, String, Vec<(String, String)>) {
    let dir = format!("/sys/class/net/{nic}/queues");
    let queues = h.src.list(&dir).unwrap_or_default();
    let rx: Vec<&String> = queues.iter().filter(|q| q.starts_with("rx-")).collect();
    let tx: Vec<&String> = queues.iter().filter(|q| q.starts_with("tx-")).collect();
    let mask = |q: &String, file: &str| {
        h.src
            .read(&format!("{dir}/{q}/{file}"))
            .and_then(|t| parse::cpu_mask(&t))
    };
    let rps_off: Vec<&&String> = rx
        .iter()
        .filter(|q| mask(q, "rps_cpus").is_some_and(|m| m.is_empty()))
        .collect();
    let xps: Vec<Vec<usize>> = tx.iter().filter_map(|q| mask(q, "xps_cpus")).collect();
    let xps_shown = match xps.iter().filter(|m| !m.is_empty()).count() {
        // A single-queue NIC has no xps_cpus file: there is nothing to steer.
        _ if xps.is_empty() => "xps not visible".to_string(),
        n => format!("xps on {n}"),
    };
    let current = format!(
        "{nic}: {} rx queues, rps off on {}; {} tx queues, {xps_shown}",
        rx.len(),
        rps_off.len(),
        tx.len(),
    );
    if rx.is_empty() {
        return (
            Status::Unknown,
            format!("{nic}: queues not visible"),
            vec![],
        );
    }
    if rx.len() >= cores.len() || rps_off.is_empty() {
        return (Status::Ok, current, vec![]);
    }
    let all = parse::format_cpu_mask(cores);
    let fixes = rps_off
        .iter()
        .map(|q| (format!("{dir}/{q}/rps_cpus"), all.clone()))
        .collect();
    (Status::Warn, current, fixes)
}

pub(super) fn rps_xps(h: &Host) -> Finding {
    let recommended = "rps on every core when rx queues < cores";
    let cores = online_cpus(h).unwrap_or_default();
    let mut parts = Vec::new();
    let mut fixes = Vec::new();
    for nic in nics(h) {
        let (status, current, nic_fixes) = rps_for(h, &nic, &cores);
        parts.push((status, current));
        fixes.extend(nic_fixes);
    }
    if parts.is_empty() {
        return Finding::unknown(recommended, "no NIC with a device in /sys/class/net");
    }
    let mut finding = combine(
        parts,
        recommended,
        "with fewer receive queues than cores, RPS spreads packet processing over the cores",
    );
    for (path, value) in fixes {
        finding = finding.fix(&path, &value);
    }
    finding
}

fn backlog(h: &Host, path: &str, why: &str) -> Finding {
    let recommended = format!(">= {BACKLOG_MIN}");
    match h.read_int(path) {
        None => Finding::unknown(&recommended, &format!("cannot read {path}")),
        Some(v) if v >= BACKLOG_MIN => Finding::new(Status::Ok, v.to_string(), &recommended, why),
        Some(v) => Finding::new(Status::Warn, v.to_string(), &recommended, why)
            .fix(path, &BACKLOG_MIN.to_string()),
    }
}

pub(super) fn somaxconn(h: &Host) -> Finding {
    backlog(
        h,
        "/proc/sys/net/core/somaxconn",
        "caps the accept queue: clients reconnecting together after a restart are not refused",
    )
}

pub(super) fn tcp_max_syn_backlog(h: &Host) -> Finding {
    backlog(
        h,
        "/proc/sys/net/ipv4/tcp_max_syn_backlog",
        "half-open connections queued during a reconnect storm",
    )
}
