//! Pure parsers of procfs and sysfs text. Every check reads a file as text and hands it here,
//! so what a value means is decided in one place and tested against files recorded on real
//! machines (see the tests at the bottom), not only against this one.

use std::collections::BTreeMap;

/// Most CPUs a list or mask may name: larger than any machine Linux runs on today, so that a
/// corrupt file cannot make a parser allocate without bound.
const CPU_INDEX_MAX: usize = 65_536;

/// An integer sysctl such as `/proc/sys/vm/swappiness` ("60\n").
pub(crate) fn sysctl_int(text: &str) -> Option<i64> {
    text.trim().parse().ok()
}

/// A sysfs choice file: the current value in brackets among the others, as in
/// `queue/scheduler` ("none [mq-deadline] kyber") or THP ("always [madvise] never").
/// A device with a single scheduler prints it bare ("none").
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Choice {
    pub current: String,
    pub available: Vec<String>,
}

pub(crate) fn choice(text: &str) -> Option<Choice> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut current = None;
    let mut available = Vec::with_capacity(words.len());
    for word in &words {
        match word.strip_prefix('[').and_then(|w| w.strip_suffix(']')) {
            Some(inner) => {
                current = Some(inner.to_string());
                available.push(inner.to_string());
            }
            None => available.push(word.to_string()),
        }
    }
    let current = match (current, words.as_slice()) {
        (Some(c), _) => c,
        (None, [only]) => only.to_string(),
        _ => return None,
    };
    Some(Choice { current, available })
}

/// A CPU list as in `/sys/devices/system/cpu/online` or `isolated`: "0-3,8,10-11"; empty
/// means no CPU.
pub(crate) fn cpu_list(text: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?),
            None => {
                let c = part.parse::<usize>().ok()?;
                (c, c)
            }
        };
        if first > last || last >= CPU_INDEX_MAX {
            return None;
        }
        cpus.extend(first..=last);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Some(cpus)
}

/// A hexadecimal CPU mask as in `rps_cpus` or `smp_affinity`: 32-bit words, most significant
/// first, separated by commas ("00000000,00000003" is CPUs 0 and 1).
pub(crate) fn cpu_mask(text: &str) -> Option<Vec<usize>> {
    let words: Vec<&str> = text.trim().split(',').collect();
    if words.len() * 32 > CPU_INDEX_MAX {
        return None;
    }
    let mut cpus = Vec::new();
    for (i, word) in words.iter().rev().enumerate() {
        let bits = u32::from_str_radix(word, 16).ok()?;
        cpus.extend((0..32).filter(|b| bits & (1 << b) != 0).map(|b| i * 32 + b));
    }
    Some(cpus)
}

/// The mask that names `cpus`, in the format `cpu_mask` reads.
pub(crate) fn format_cpu_mask(cpus: &[usize]) -> String {
    let words = cpus.iter().max().map_or(1, |m| m / 32 + 1);
    let mut bits = vec![0u32; words];
    for &c in cpus {
        bits[c / 32] |= 1 << (c % 32);
    }
    let hex: Vec<String> = bits.iter().rev().map(|w| format!("{w:08x}")).collect();
    hex.join(",")
}

/// Formats CPUs back as a compact list ("0-3,8").
pub(crate) fn format_cpu_list(cpus: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        while i + 1 < cpus.len() && cpus[i + 1] == cpus[i] + 1 {
            i += 1;
        }
        parts.push(match cpus[i] {
            end if end == start => start.to_string(),
            end => format!("{start}-{end}"),
        });
        i += 1;
    }
    parts.join(",")
}

/// One limit of `/proc/<pid>/limits`; `None` is "unlimited".
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) struct Limit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// Finds the limit called `name` ("Max locked memory", "Max open files") in
/// `/proc/<pid>/limits`, whose columns are name, soft, hard and units.
pub(crate) fn limit(text: &str, name: &str) -> Option<Limit> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let mut values = line[name.len()..].split_whitespace();
    let value = |v: &str| match v {
        "unlimited" => Some(None),
        n => n.parse().ok().map(Some),
    };
    Some(Limit {
        soft: value(values.next()?)?,
        hard: value(values.next()?)?,
    })
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, PartialEq, Eq, Clone)]
pub(crate) struct Mount {
    pub mount_point: String,
    pub fs_type: String,
    pub source: String,
    /// Per-mount and per-superblock options together ("rw,noatime,discard").
    pub options: Vec<String>,
}

/// Parses mountinfo: "36 35 98:0 /root /mnt rw,noatime master:1 - ext4 /dev/sda1 rw,errors=..."
/// (optional fields up to the lone "-", then type, source and super options). Lines that do
/// not have that shape are skipped.
pub(crate) fn mountinfo(text: &str) -> Vec<Mount> {
    text.lines().filter_map(mountinfo_line).collect()
}

fn mountinfo_line(line: &str) -> Option<Mount> {
    let fields: Vec<&str> = line.split(' ').collect();
    let dash = fields.iter().position(|f| *f == "-")?;
    if dash < 6 || fields.len() < dash + 3 {
        return None;
    }
    let mut options: Vec<String> = fields[5].split(',').map(str::to_string).collect();
    if let Some(super_options) = fields.get(dash + 3) {
        options.extend(super_options.split(',').map(str::to_string));
    }
    Some(Mount {
        mount_point: unescape_octal(fields[4]),
        fs_type: fields[dash + 1].to_string(),
        source: unescape_octal(fields[dash + 2]),
        options,
    })
}

/// mountinfo writes space, tab, newline and backslash in paths as `\040`-style octal.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let d = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(d, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount that holds `path` (an absolute, canonical path): the longest mount point that is
/// a prefix of it; the last such line wins, as a later mount hides an earlier one.
pub(crate) fn mount_for<'a>(mounts: &'a [Mount], path: &str) -> Option<&'a Mount> {
    let under = |m: &Mount| {
        m.mount_point == "/"
            || path == m.mount_point
            || path.starts_with(&format!("{}/", m.mount_point))
    };
    mounts
        .iter()
        .filter(|m| under(m))
        .fold(None, |best: Option<&Mount>, m| match best {
            Some(b) if b.mount_point.len() > m.mount_point.len() => Some(b),
            _ => Some(m),
        })
}

/// `KEY=value` lines, as in a sysfs `uevent` file.
pub(crate) fn key_values(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Interrupts per CPU for each IRQ number in `/proc/interrupts` (named lines such as NMI are
/// skipped): the header gives the CPU columns.
pub(crate) fn interrupts(text: &str) -> BTreeMap<u32, Vec<u64>> {
    let mut lines = text.lines();
    let cpu_count = lines.next().map_or(0, |h| h.split_whitespace().count());
    lines
        .filter_map(|line| {
            let (irq, rest) = line.trim_start().split_once(':')?;
            let irq = irq.parse().ok()?;
            let counts: Vec<u64> = rest
                .split_whitespace()
                .take(cpu_count)
                .map_while(|c| c.parse().ok())
                .collect();
            Some((irq, counts))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_values_are_trimmed_and_bad_ones_refused() {
        assert_eq!(sysctl_int("60\n"), Some(60));
        assert_eq!(sysctl_int(" 0"), Some(0));
        assert_eq!(sysctl_int("abc"), None);
        assert_eq!(sysctl_int(""), None);
    }

    #[test]
    fn scheduler_choices_of_several_machines() {
        // This VM's virtio disk.
        let vda = choice("none [mq-deadline] kyber bfq \n").unwrap();
        assert_eq!(vda.current, "mq-deadline");
        assert_eq!(vda.available, ["none", "mq-deadline", "kyber", "bfq"]);
        // An NVMe drive with the default `none`.
        assert_eq!(
            choice("[none] mq-deadline kyber\n").unwrap().current,
            "none"
        );
        // A device-mapper volume offers only `none`, printed without brackets.
        let dm = choice("none\n").unwrap();
        assert_eq!((dm.current.as_str(), dm.available.len()), ("none", 1));
        // A rotational SATA disk.
        assert_eq!(
            choice("[mq-deadline] none\n").unwrap().current,
            "mq-deadline"
        );
        assert_eq!(choice("none mq-deadline\n"), None);
        assert_eq!(choice(""), None);
    }

    #[test]
    fn transparent_huge_pages_modes() {
        assert_eq!(
            choice("[always] madvise never\n").unwrap().current,
            "always"
        );
        assert_eq!(
            choice("always [madvise] never\n").unwrap().current,
            "madvise"
        );
        assert_eq!(choice("always madvise [never]\n").unwrap().current, "never");
    }

    #[test]
    fn cpu_lists_and_masks() {
        assert_eq!(cpu_list("0-1\n"), Some(vec![0, 1]));
        assert_eq!(cpu_list("0-3,8,10-11\n"), Some(vec![0, 1, 2, 3, 8, 10, 11]));
        assert_eq!(cpu_list("\n"), Some(vec![]));
        assert_eq!(cpu_list("3-1"), None);
        assert_eq!(cpu_list("0-99999999"), None);
        assert_eq!(cpu_list("x"), None);
        assert_eq!(cpu_mask("0\n"), Some(vec![]));
        assert_eq!(cpu_mask("00000000,00000003\n"), Some(vec![0, 1]));
        assert_eq!(cpu_mask("1,80000000"), Some(vec![31, 32]));
        assert_eq!(cpu_mask("zz"), None);
        assert_eq!(format_cpu_mask(&[0, 1]), "00000003");
        assert_eq!(format_cpu_mask(&[31, 32]), "00000001,80000000");
        assert_eq!(
            cpu_mask(&format_cpu_mask(&[2, 40, 63])),
            Some(vec![2, 40, 63])
        );
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(format_cpu_list(&[]), "");
    }

    const LIMITS: &str = "\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max open files            1024                 524288               files     
Max locked memory         8388608              8388608              bytes     
Max address space         unlimited            unlimited            bytes     
";

    #[test]
    fn rlimits_from_proc_limits() {
        let memlock = limit(LIMITS, "Max locked memory").unwrap();
        assert_eq!(memlock.soft, Some(8 << 20));
        let files = limit(LIMITS, "Max open files").unwrap();
        assert_eq!((files.soft, files.hard), (Some(1024), Some(524288)));
        let unlimited = limit(
            "Max locked memory         unlimited            unlimited            bytes\n",
            "Max locked memory",
        );
        assert_eq!(unlimited.unwrap().soft, None);
        assert_eq!(limit(LIMITS, "Max nice priority"), None);
        assert_eq!(limit("Max open files   lots   1\n", "Max open files"), None);
    }

    const MOUNTINFO: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,errors=remount-ro
25 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
30 22 0:26 / /tmp rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,size=4G
41 22 259:1 / /var/lib/riffle rw,noatime shared:20 - xfs /dev/nvme0n1p1 rw,attr2,discard
42 22 259:2 / /mnt/my\\040disk rw - ext4 /dev/sdb1 rw
";

    #[test]
    fn mountinfo_finds_the_mount_under_a_path() {
        let mounts = mountinfo(MOUNTINFO);
        assert_eq!(mounts.len(), 5);
        let data = mount_for(&mounts, "/var/lib/riffle/data").unwrap();
        assert_eq!(
            (data.fs_type.as_str(), data.source.as_str()),
            ("xfs", "/dev/nvme0n1p1")
        );
        assert!(data.options.iter().any(|o| o == "discard"));
        assert!(data.options.iter().any(|o| o == "noatime"));
        assert_eq!(mount_for(&mounts, "/tmp/x").unwrap().fs_type, "tmpfs");
        assert_eq!(mount_for(&mounts, "/tmpx").unwrap().fs_type, "ext4");
        assert_eq!(
            mount_for(&mounts, "/mnt/my disk/d").unwrap().source,
            "/dev/sdb1"
        );
        assert!(mountinfo("garbage\n1 2 3\n").is_empty());
    }

    #[test]
    fn uevent_and_interrupts() {
        let ev = key_values("MAJOR=259\nMINOR=1\nDEVNAME=nvme0n1p1\nDEVTYPE=partition\n");
        assert_eq!(ev["DEVNAME"], "nvme0n1p1");
        assert_eq!(ev["DEVTYPE"], "partition");
        let irqs = interrupts(
            "           CPU0       CPU1       \n \
             38:          0       2035 PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0\n \
             39:       1803          0 PCI-MSIX-0000:00:03.0   2-edge      virtio2-output.0\n\
             NMI:          0          0   Non-maskable interrupts\n",
        );
        assert_eq!(irqs.len(), 2);
        assert_eq!(irqs[&38], vec![0, 2035]);
        assert_eq!(irqs[&39], vec![1803, 0]);
    }
}
