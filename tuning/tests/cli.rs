//! riffle-tune as an operator runs it, on this machine: `check` prints a valid table and JSON,
//! `iotune` measures a directory for a few seconds with plausible figures and cleans up, and
//! `apply --dry-run` prints its plan and changes nothing.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tune() -> Command {
    Command::new(env!("CARGO_BIN_EXE_riffle-tune"))
}

/// A directory on the disk the build is on (not /tmp, which may be tmpfs, where iotune refuses
/// to run and O_DIRECT is not what the broker gets).
fn scratch_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(name)
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir under the target dir")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("riffle-tune runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn check_json(data_dir: &Path) -> (serde_json::Value, Output) {
    let out = run(tune().args(["check", "--json", "--data-dir"]).arg(data_dir));
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check --json is not JSON ({e}): {}", text(&out.stdout)));
    (doc, out)
}

#[test]
fn check_json_on_this_machine_is_a_valid_table() {
    let dir = scratch_dir("check");
    let (doc, out) = check_json(dir.path());
    let rows = doc["checks"].as_array().expect("checks array");
    assert!(rows.len() >= 20, "{} rows", rows.len());
    let mut names = Vec::new();
    for row in rows {
        let field = |k: &str| row[k].as_str().unwrap_or_else(|| panic!("{k} in {row}"));
        assert!(
            !field("name").is_empty() && !field("why").is_empty(),
            "{row}"
        );
        assert!(
            !field("current").is_empty() && !field("recommended").is_empty(),
            "{row}"
        );
        assert!(
            ["ok", "warn", "fail", "unknown"].contains(&field("status")),
            "{row}"
        );
        names.push(field("name").to_string());
    }
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "duplicate names: {names:?}");
    for expected in [
        "kernel.io_uring_disabled",
        "memlock",
        "disk_scheduler",
        "net.core.somaxconn",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "no {expected} in {names:?}"
        );
    }
    // This machine runs the broker's tests, so io_uring and O_DIRECT work here.
    let status = |name: &str| rows.iter().find(|r| r["name"] == name).unwrap()["status"].clone();
    assert_eq!(status("io_uring_features"), "ok");
    assert_eq!(status("o_direct"), "ok");
    let failed = doc["summary"]["fail"].as_u64().unwrap();
    assert_eq!(
        out.status.success(),
        failed == 0,
        "exit status follows failed checks"
    );
    // The probe's scratch file is gone.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    let table = run(tune().args(["check", "--data-dir"]).arg(dir.path()));
    let table = text(&table.stdout);
    assert!(table.starts_with("NAME"), "{table}");
    assert_eq!(table.lines().count(), rows.len() + 1, "{table}");
}

/// `check --json` with `args`, and its row named `name`.
fn check_row(args: &[&str], name: &str) -> (serde_json::Value, Output) {
    let out = run(tune().args(["check", "--json"]).args(args));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no {name} row"))
        .clone();
    (row, out)
}

#[test]
fn check_exits_non_zero_when_a_check_fails() {
    // A data dir on tmpfs fails: glommio would fall back to buffered I/O there.
    let (filesystem, out) = check_row(&["--data-dir", "/dev/shm/riffle-tune-check"], "filesystem");
    if filesystem["current"]
        .as_str()
        .unwrap_or("")
        .starts_with("tmpfs")
    {
        assert_eq!(filesystem["status"], "fail", "{filesystem}");
        assert_eq!(out.status.code(), Some(1));
    }
}

#[test]
fn too_little_locked_memory_is_a_warning_not_a_failure() {
    // 512 shards of 1 GiB pools need 1.5 TiB of locked memory; the broker runs below it,
    // without registered buffers.
    let args = ["--smp", "512", "--io-memory-bytes", "1073741824"];
    let (memlock, _) = check_row(&args, "memlock");
    if memlock["current"] != "unlimited" {
        assert_eq!(memlock["status"], "warn", "{memlock}");
    }
}

fn properties(dir: &Path) -> toml::Table {
    let path = dir.join("io-properties.toml");
    let body = std::fs::read_to_string(&path).expect("iotune wrote io-properties.toml");
    toml::from_str(&body).expect("io-properties.toml is TOML")
}

fn positive(v: &toml::Value) -> bool {
    v.as_float().is_some_and(|f| f > 0.0) || v.as_integer().is_some_and(|i| i > 0)
}

#[test]
fn iotune_figures_are_plausible_and_it_cleans_up() {
    let dir = scratch_dir("iotune");
    let out = run(tune()
        .args([
            "iotune",
            "--duration",
            "3s",
            "--file-bytes",
            "67108864",
            "--quiet",
            "--dir",
        ])
        .arg(dir.path()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("recommended: write_behind_depth"));
    let props = properties(dir.path());
    for (table, figure) in [
        ("seq_write", "mb_per_s"),
        ("seq_read", "mb_per_s"),
        ("random_read", "iops"),
    ] {
        let rows = props[table].as_array().unwrap();
        assert!(!rows.is_empty(), "{table}");
        // A 3 s run gives each shape about 50 ms: on a loaded machine the slowest shape (4 KiB at
        // queue depth 1) can round to 0.0 MB/s, so every figure must be a number >= 0 and the
        // table's best one positive.
        for row in rows {
            let f = &row[figure];
            assert!(
                f.as_float()
                    .or(f.as_integer().map(|i| i as f64))
                    .is_some_and(|v| v >= 0.0),
                "{table}: {row}"
            );
        }
        assert!(
            rows.iter().any(|row| positive(&row[figure])),
            "{table}: {rows:?}"
        );
    }
    for row in props["fdatasync"].as_array().unwrap() {
        let q = |k: &str| row[k].as_integer().unwrap();
        assert!(q("count") > 0 && q("p50_us") > 0, "{row}");
        assert!(
            q("p50_us") <= q("p99_us") && q("p99_us") <= q("p999_us"),
            "{row}"
        );
    }
    for row in props["fdatasync_parallel"].as_array().unwrap() {
        assert!(positive(&row["syncs_per_s"]), "{row}");
    }
    let rec = &props["recommended"];
    assert!(positive(&rec["write_behind_depth"]) && positive(&rec["fdatasync_parallelism"]));
    // Nothing left but the properties file, and the scratch file stayed within its bound.
    let left: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(left, [dir.path().join("io-properties.toml")]);
    assert!(props["disk"]["file_bytes"].as_integer().unwrap() <= 64 << 20);
}

#[test]
fn iotune_interrupted_removes_its_scratch_files() {
    let dir = scratch_dir("iotune-int");
    let child = tune()
        .args([
            "iotune",
            "--duration",
            "20s",
            "--file-bytes",
            "67108864",
            "--quiet",
            "--dir",
        ])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Long enough to be measuring (the scratch directory exists), well before the end.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("interrupted"),
        "{}",
        text(&out.stderr)
    );
    let left = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(left, 0, "scratch files or io-properties.toml left behind");
}

#[test]
fn iotune_refuses_bad_input_with_a_clear_error() {
    let out = run(tune().args(["iotune", "--dir", "/nonexistent/riffle", "--duration", "1s"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not a directory"),
        "{}",
        text(&out.stderr)
    );
    let out = run(tune().args(["iotune", "--dir", ".", "--duration", "5 parsecs"]));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("bad duration"),
        "{}",
        text(&out.stderr)
    );
}

/// The contents of every file `apply` would write.
fn fix_targets(doc: &serde_json::Value) -> Vec<(String, Option<String>)> {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["fixes"].as_array().unwrap().iter())
        .map(|f| {
            let path = f["path"].as_str().unwrap().to_string();
            let body = std::fs::read_to_string(&path).ok();
            (path, body)
        })
        .collect()
}

#[test]
fn apply_dry_run_prints_the_plan_and_changes_nothing() {
    let dir = scratch_dir("apply");
    let (doc, _) = check_json(dir.path());
    let before = fix_targets(&doc);
    let out = run(tune()
        .args(["apply", "--dry-run", "--data-dir"])
        .arg(dir.path()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    for (path, _) in &before {
        assert!(
            printed.contains(&format!(": {path}: ")),
            "{path} not in {printed}"
        );
    }
    assert!(
        printed.contains("dry run: nothing was changed")
            || printed.starts_with("nothing to change"),
        "{printed}"
    );
    let after: Vec<(String, Option<String>)> = before
        .iter()
        .map(|(p, _)| (p.clone(), std::fs::read_to_string(p).ok()))
        .collect();
    assert_eq!(before, after);

    let out = run(tune().args(["apply", "--dry-run", "--only", "no_such_check"]));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no check named"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn apply_without_root_refuses_politely() {
    let mut cmd = tune();
    cmd.arg("apply");
    if nix::unistd::geteuid().is_root() {
        // As `nobody`; skip where that user cannot reach the binary (a private target dir).
        cmd.uid(65534).gid(65534);
    }
    let Ok(out) = cmd.output() else {
        return;
    };
    if out.status.code() == Some(126) || text(&out.stderr).contains("Permission denied") {
        return;
    }
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("needs root"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
}
