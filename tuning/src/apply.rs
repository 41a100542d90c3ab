//! `riffle-tune apply`: makes the run-time changes the checks propose (writes to procfs and
//! sysfs) and, for a service user, the resource limits in limits.d. Each change is printed with
//! the value before and after; `--dry-run` prints them and writes nothing.

use std::io::Write;

use crate::check::{BrokerNeeds, Row};
use crate::parse;

/// Where `--user` limits go; read by pam_limits at each login session of that user.
const LIMITS_DIR: &str = "/etc/security/limits.d";
/// The name `--only` accepts for the limits file.
pub(crate) const LIMITS_CHECK: &str = "limits";
/// Headroom over the computed open-files need, so adding partitions does not hit the limit.
const NOFILE_HEADROOM: u64 = 4;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApplyError {
    #[error("no check named {name:?}; known: {known}")]
    UnknownCheck { name: String, known: String },
    #[error("no user named {0:?} on this machine")]
    UnknownUser(String),
    #[error("{failed} of {total} changes failed")]
    Failed { failed: usize, total: usize },
    #[error("writing to stdout: {0}")]
    Output(#[from] std::io::Error),
}

/// One file to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub check: &'static str,
    pub path: String,
    pub value: String,
}

/// The changes the rows propose, restricted to the check named `only`.
pub(crate) fn plan(rows: &[Row], only: Option<&str>) -> Result<Vec<Change>, ApplyError> {
    if let Some(name) = only {
        let known = rows.iter().any(|r| r.name == name) || name == LIMITS_CHECK;
        if !known {
            let mut names: Vec<&str> = rows.iter().map(|r| r.name).collect();
            names.push(LIMITS_CHECK);
            return Err(ApplyError::UnknownCheck {
                name: name.to_string(),
                known: names.join(", "),
            });
        }
    }
    Ok(rows
        .iter()
        .filter(|r| only.is_none_or(|o| o == r.name))
        .flat_map(|r| {
            r.fixes.iter().map(|f| Change {
                check: r.name,
                path: f.path.clone(),
                value: f.value.clone(),
            })
        })
        .collect())
}

/// The limits.d file that gives `user` the locked memory and open files the broker needs.
pub(crate) fn limits_change(user: &str, needs: &BrokerNeeds) -> Result<Change, ApplyError> {
    let exists = nix::unistd::User::from_name(user).ok().flatten().is_some();
    if !exists {
        return Err(ApplyError::UnknownUser(user.to_string()));
    }
    let memlock_kib = needs.memlock_bytes().div_ceil(1024);
    let nofile = needs.open_files() * NOFILE_HEADROOM;
    let value = format!(
        "# Written by riffle-tune apply: locked memory for glommio's rings ({} shards x 3 x {} bytes)\n\
         # and open files for partitions and connections. Read at login by pam_limits; a systemd\n\
         # unit sets LimitMEMLOCK={} and LimitNOFILE={nofile} instead.\n\
         {user} soft memlock {memlock_kib}\n{user} hard memlock {memlock_kib}\n\
         {user} soft nofile {nofile}\n{user} hard nofile {nofile}\n",
        needs.shards,
        needs.io_memory_bytes,
        memlock_kib * 1024,
    );
    Ok(Change {
        check: LIMITS_CHECK,
        path: format!("{LIMITS_DIR}/99-riffle-{user}.conf"),
        value,
    })
}

/// A file's value as a person reads it: the bracketed choice of a sysfs choice file, the first
/// line of anything longer, or "absent".
fn shown(text: Option<&str>) -> String {
    let Some(text) = text else {
        return "absent".into();
    };
    if let Some(choice) = text.contains('[').then(|| parse::choice(text)).flatten() {
        return choice.current;
    }
    match text.trim().lines().count() {
        0 | 1 => text.trim().to_string(),
        n => format!("{n} lines"),
    }
}

/// Prints and (unless `dry_run`) makes each change, reading the file back after writing.
pub(crate) fn run(
    changes: &[Change],
    dry_run: bool,
    out: &mut impl Write,
) -> Result<(), ApplyError> {
    if changes.is_empty() {
        writeln!(
            out,
            "nothing to change: every setting apply can make is as recommended"
        )?;
        return Ok(());
    }
    let mut failed = 0;
    for c in changes {
        let before = std::fs::read_to_string(&c.path).ok();
        let target = shown(Some(&c.value));
        if dry_run {
            writeln!(
                out,
                "would set {}: {}: {} -> {target}",
                c.check,
                c.path,
                shown(before.as_deref())
            )?;
            continue;
        }
        let written = std::fs::write(&c.path, &c.value);
        let after = std::fs::read_to_string(&c.path).ok();
        match written {
            Ok(()) => writeln!(
                out,
                "set {}: {}: {} -> {}",
                c.check,
                c.path,
                shown(before.as_deref()),
                shown(after.as_deref())
            )?,
            Err(e) => {
                failed += 1;
                writeln!(
                    out,
                    "FAILED {}: {}: {e} (still {})",
                    c.check,
                    c.path,
                    shown(after.as_deref())
                )?;
            }
        }
    }
    if dry_run {
        writeln!(out, "dry run: nothing was changed")?;
    }
    match failed {
        0 => Ok(()),
        failed => Err(ApplyError::Failed {
            failed,
            total: changes.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{Fix, Status};

    fn row(name: &'static str, fixes: &[(&str, &str)]) -> Row {
        Row {
            name,
            current: "x".into(),
            recommended: "y".into(),
            status: if fixes.is_empty() {
                Status::Ok
            } else {
                Status::Warn
            },
            why: String::new(),
            fixes: fixes
                .iter()
                .map(|(p, v)| Fix {
                    path: p.to_string(),
                    value: v.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn plan_takes_every_fix_or_only_the_named_check() {
        let rows = [
            row("vm.swappiness", &[("/proc/sys/vm/swappiness", "1")]),
            row("clocksource", &[]),
            row(
                "cpu_governor",
                &[("/a", "performance"), ("/b", "performance")],
            ),
        ];
        assert_eq!(plan(&rows, None).unwrap().len(), 3);
        let only = plan(&rows, Some("cpu_governor")).unwrap();
        assert_eq!(only.len(), 2);
        assert!(only.iter().all(|c| c.check == "cpu_governor"));
        assert!(plan(&rows, Some("clocksource")).unwrap().is_empty());
        let err = plan(&rows, Some("nope")).unwrap_err().to_string();
        assert!(
            err.contains("nope") && err.contains("vm.swappiness"),
            "{err}"
        );
    }

    #[test]
    fn dry_run_prints_before_and_target_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scheduler");
        std::fs::write(&path, "none [mq-deadline] kyber\n").unwrap();
        let changes = [Change {
            check: "disk_scheduler",
            path: path.to_string_lossy().into_owned(),
            value: "none".into(),
        }];
        let mut out = Vec::new();
        run(&changes, true, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("would set disk_scheduler"), "{text}");
        assert!(text.contains("mq-deadline -> none"), "{text}");
        let after = std::fs::read_to_string(&path).unwrap();
        assert_eq!(after, "none [mq-deadline] kyber\n");
    }

    #[test]
    fn a_real_run_writes_and_reads_back_and_counts_failures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("swappiness");
        std::fs::write(&path, "60\n").unwrap();
        let good = Change {
            check: "vm.swappiness",
            path: path.to_string_lossy().into_owned(),
            value: "1".into(),
        };
        let bad = Change {
            path: dir
                .path()
                .join("missing/file")
                .to_string_lossy()
                .into_owned(),
            ..good.clone()
        };
        let mut out = Vec::new();
        let err = run(&[good, bad], false, &mut out).unwrap_err();
        assert!(matches!(
            err,
            ApplyError::Failed {
                failed: 1,
                total: 2
            }
        ));
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("60 -> 1"), "{text}");
        assert!(text.contains("FAILED"), "{text}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1");
    }

    #[test]
    fn limits_for_a_user_cover_the_rings_and_files() {
        let needs = BrokerNeeds {
            shards: 4,
            io_memory_bytes: 1 << 20,
            partitions: 100,
            connections: 1000,
        };
        let c = limits_change("root", &needs).unwrap();
        assert!(c.value.contains("root soft memlock 12288"), "{}", c.value);
        assert!(c.value.contains("root hard nofile 6624"), "{}", c.value);
        assert!(limits_change("no-such-user-riffle", &needs).is_err());
    }
}
