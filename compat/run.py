#!/usr/bin/env python3
"""Runs librdkafka's integration tests against Riffle, one fresh broker per test.

Called by scripts/compat once librdkafka's test-runner and the release broker are built. Each test
(a test number, optionally @scenario) gets its own Riffle on a free 127.0.0.1 port with a fresh data
dir, its own test.conf, and a time limit; a pass/fail line per test, then "N passed, N failed".
"""

import argparse
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# The Kafka version the suite is told it runs against (TEST_KAFKA_VERSION): Riffle's codec is
# generated from Kafka 4's message definitions, and a 4.x broker no longer takes the v0/v1 message
# formats, which the suite skips for 4.0 and later (0052, 0092).
KAFKA_VERSION = "4.0.0"
# Longest a whole test number may run, on top of the suite's own per-test timeouts.
TEST_TIMEOUT_S_DEFAULT = 240
# How long a fresh broker may take to accept connections, and to stop after SIGTERM.
BROKER_START_TIMEOUT_S = 20
BROKER_STOP_TIMEOUT_S = 10
# test-runner flags: one test at a time, no sockem (socket fault injection), no local tests (they
# never contact a broker); quick mode (fewer messages and iterations) is added where it skips no
# sub-test (see runs_whole_in_quick_mode).
RUNNER_FLAGS = ["-p1", "-E", "-L"]
QUICK_FLAG = "-Q"
# What quick mode skips: a sub-test not marked quick, SUB_TEST(...) or SUB_TEST0(<not 1>, ...), and
# the rest of a test after `if (test_quick) { TEST_SAY("Skipping further ...`.
QUICK_MODE_SKIPS = re.compile(r"\bSUB_TEST\s*\(|\bSUB_TEST0\s*\(\s*(?!1\s*,)"
                              r'|if\s*\(\s*test_quick\s*\)\s*\{?\s*[\w:]+\s*\(\s*"[^"]*[Ss]kip')
# The summary row of a test the flags above keep from running (-L, -E, librdkafka's known issues).
FILTERED = "Filtered due to negative test flags"
# Scenarios of librdkafka's suite (tests/scenarios/*.json) that Riffle can be set up for.
SCENARIOS = ("default", "noautocreate")

# An allow-list entry's expected run time, "~99s".
EXPECTED_DURATION = re.compile(r"~(\d+)s\s+")

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
# A row of test-runner's summary table: "| 0001_multiobj | PASSED | 3.123s | reason".
SUMMARY_ROW = re.compile(r"^\|\s*(\d{4}\S*)\s*\|\s*(\w+)\s*\|\s*([\d.]+)s\s*\|\s*(.*)$")
# The first line of a failure report: '### Test "0011_x (sub:629)" failed at file.c:718:fn() at ...'.
FAILURE = re.compile(r'^### Test "([^"]+)" failed at ([^:]+:\d+):')


class Case:
    """One run of test-runner: a test number in one scenario."""

    def __init__(self, spec, name="", force_quick=False, expected_s=0, short=False):
        number, _, scenario = spec.partition("@")
        if not re.fullmatch(r"\d{4}", number):
            raise ValueError(f"not a test number: {spec!r} (want NNNN or NNNN@scenario)")
        scenario = scenario or "default"
        if scenario not in SCENARIOS:
            raise ValueError(f"{spec}: unknown scenario {scenario!r} (known: {SCENARIOS})")
        self.number, self.scenario, self.name = number, scenario, name
        self.force_quick = force_quick
        self.expected_s = expected_s
        self.short = short

    @property
    def label(self):
        return self.number if self.scenario == "default" else f"{self.number}@{self.scenario}"


def read_allowlist(path):
    """Cases of compat/allowlist.txt: "NNNN[@scenario] [~Ns] [short] [quick] name", '#' starts a
    comment; "~Ns" is how long the test takes (N seconds), so the longest start first; "short"
    puts the test on the list --short runs; "quick" runs the test with -Q even though that skips
    some of it (the allow-list says what)."""
    cases = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, _, name = line.partition(" ")
        expected = EXPECTED_DURATION.match(name)
        expected_s = int(expected.group(1)) if expected else 0
        name = name[expected.end():] if expected else name
        short = name.startswith("short ")
        name = name.removeprefix("short ") if short else name
        force_quick = name.startswith("quick ")
        name = name.removeprefix("quick ") if force_quick else name
        try:
            cases.append(Case(spec, name.strip(), force_quick, expected_s, short))
        except ValueError as err:
            sys.exit(f"{path}:{line_no}: {err}")
    return cases


def broker_facing_tests(tests_dir):
    """(name, scenarios) of every test in test.c's table that needs a broker and runs unattended."""
    source = (tests_dir / "test.c").read_text()
    table = source[source.index("struct test tests[] = {") :]
    table = table[: table.index("{NULL}")]
    found = []
    for entry in table.split("_TEST(")[1:]:
        name = entry.split(",", 1)[0].strip()
        flags = entry.split(")", 1)[0]
        if any(f in flags for f in ("TEST_F_LOCAL", "TEST_F_MANUAL", "TEST_F_SOCKEM")):
            continue
        scenario = re.search(r'\.scenario\s*=\s*"([^"]+)"', entry)
        found.append((name, scenario.group(1).split(",") if scenario else ["default"]))
    return found


def all_cases(tests_dir):
    """Every (number, scenario) pair that --all sweeps, named by its tests."""
    by_label = {}
    for name, scenarios in broker_facing_tests(tests_dir):
        for scenario in scenarios:
            if scenario not in SCENARIOS:
                continue
            case = Case(f"{name[:4]}@{scenario}")
            entry = by_label.setdefault(case.label, case)
            entry.name = f"{entry.name} {name[5:]}".strip()
    return sorted(by_label.values(), key=lambda c: (c.number, c.scenario))


def runs_whole_in_quick_mode(tests_dir, number):
    """False when -Q would skip sub-tests (0018, 0113) or the rest of the test (0081, 0082): such a
    test runs in full, or its pass would prove less than it says."""
    sources = list(tests_dir.glob(f"{number}-*.c")) + list(tests_dir.glob(f"{number}-*.cpp"))
    return not any(QUICK_MODE_SKIPS.search(path.read_text()) for path in sources)


def unexplained(cases, allowlist, findings_text):
    """Broker-facing cases neither allow-listed nor named in FINDINGS.md (as NNNN or NNNN@scenario)."""
    listed = {case.label for case in allowlist}
    return [case.label for case in cases if case.label not in listed
            and not re.search(rf"(?<![\d@]){re.escape(case.label)}(?![\d@])", findings_text)]


def die_with_parent():
    """Runs in each child before exec: SIGKILL it when this runner dies (Ctrl-C, a CI timeout), so
    no broker or test-runner outlives the run."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def broker_config(base_config, scenario):
    """The base TOML, with auto-creation off for librdkafka's noautocreate scenario."""
    text = base_config.read_text()
    if scenario == "noautocreate":
        text = re.sub(r"(?m)^auto_create_topics_enable\s*=.*$", "", text)
        text += "\n# scenario noautocreate (librdkafka's tests/scenarios/noautocreate.json)\n"
        text += "auto_create_topics_enable = false\n"
    return text


def start_broker(args, case, run_dir):
    """Starts a fresh Riffle for one case; returns (process, address)."""
    config = run_dir / "riffle.toml"
    config.write_text(broker_config(args.broker_config, case.scenario))
    # A free port can be taken between the probe and the bind: then try another.
    for _attempt in range(3):
        data_dir = run_dir / "data"
        shutil.rmtree(data_dir, ignore_errors=True)
        address = f"127.0.0.1:{free_port()}"
        command = [str(args.riffle), "serve", "--listen", address, "--data-dir", str(data_dir),
                   "--config", str(config)]
        with open(run_dir / "broker.log", "ab") as log:
            broker = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        if wait_listening(broker, address):
            return broker, address
        stop_broker(broker)
    raise RuntimeError(f"riffle did not start, see {run_dir / 'broker.log'}")


def wait_listening(broker, address):
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + BROKER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if broker.poll() is not None:
            return False
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def stop_broker(broker):
    """SIGTERM, then SIGKILL after BROKER_STOP_TIMEOUT_S. Returns (the exit status if the broker
    had already exited, else None; the exit status of the stop: 0 for a clean one)."""
    crashed = broker.poll()
    if crashed is not None:
        return crashed, crashed
    broker.send_signal(signal.SIGTERM)
    try:
        return None, broker.wait(BROKER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        broker.kill()
        return None, broker.wait()


def run_test_runner(args, case, address, run_dir):
    """Runs test-runner for one case; returns (exit status or None on timeout, output, mode)."""
    conf = run_dir / "test.conf"
    conf.write_text(f"bootstrap.servers={address}\n")
    env = dict(os.environ, TESTS=case.number, TEST_KAFKA_VERSION=KAFKA_VERSION,
               TEST_SCENARIO=case.scenario, RDKAFKA_TEST_CONF=str(conf),
               LD_LIBRARY_PATH=f"{args.tests_dir.parent / 'src'}:{args.tests_dir.parent / 'src-cpp'}")
    with open(run_dir / "test.log", "w+b") as out:
        quick_ok = case.force_quick or runs_whole_in_quick_mode(args.tests_dir, case.number)
        quick = [QUICK_FLAG] if quick_ok else []
        runner = subprocess.Popen(["./test-runner", *RUNNER_FLAGS, *quick, "-s", case.scenario],
                                  cwd=args.tests_dir, env=env, stdout=out,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True, preexec_fn=die_with_parent)
        try:
            status = runner.wait(args.timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
            status = None
        out.seek(0)
        output = ANSI_ESCAPE.sub("", out.read().decode("utf-8", "replace"))
        return status, output, "quick" if quick else "full"


def first_failure(output):
    """'test (subtest) at file:line: message' of the first failure test-runner reported."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        found = FAILURE.match(line)
        if found:
            message = lines[i + 1].strip() if i + 1 < len(lines) else ""
            return f"{found.group(1)} at {found.group(2)}: {message}"
    return None


def verdict(status, output):
    """(passed, reason): passed only if test-runner exited 0 and every reported test PASSED."""
    rows = [m.groups() for m in map(SUMMARY_ROW.match, output.splitlines()) if m]
    # Rows of tests the flags or the scenario kept from running: a silent skip has no reason.
    rows = [row for row in rows if row[1] != "SKIPPED" or row[3].strip() not in ("", FILTERED)]
    bad = [(name, state, why.strip()) for name, state, _s, why in rows if state != "PASSED"]
    failure = first_failure(output)
    if status is None:
        return False, "timed out" + (f"; {failure}" if failure else "")
    if failure:
        return False, failure
    if bad:
        name, state, why = bad[0]
        return False, f"{name} {state}" + (f": {why}" if why else "")
    if status != 0:
        return False, f"test-runner exited with {status}"
    if not rows:
        return False, "no test ran"
    return True, ", ".join(f"{name} {float(secs):.1f}s" for name, _st, secs, _w in rows)


def run_case(args, case):
    run_dir = args.work_dir / case.label.replace("@", "-")
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    started = time.monotonic()
    try:
        broker, address = start_broker(args, case, run_dir)
    except RuntimeError as err:
        return False, str(err), time.monotonic() - started
    try:
        status, output, mode = run_test_runner(args, case, address, run_dir)
    finally:
        crashed, stopped = stop_broker(broker)
    passed, reason = verdict(status, output)
    reason = f"{mode}: {reason}"
    if crashed is not None:
        passed, reason = False, f"riffle exited with {crashed} during the test; {reason}"
    elif stopped != 0:
        passed, reason = False, f"riffle did not stop cleanly on SIGTERM ({stopped}); {reason}"
    if not args.keep_data:
        shutil.rmtree(run_dir / "data", ignore_errors=True)
    return passed, reason, time.monotonic() - started


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help="NNNN or NNNN@scenario (default: the allow-list)")
    parser.add_argument("--all", action="store_true", help="every broker-facing test, a sweep")
    parser.add_argument("--short", action="store_true",
                        help="only the allow-list's entries marked \"short\"")
    parser.add_argument("--tests-dir", type=Path, required=True, help="librdkafka's tests/")
    parser.add_argument("--riffle", type=Path, required=True, help="the riffle binary")
    parser.add_argument("--allowlist", type=Path, required=True)
    parser.add_argument("--findings", type=Path, required=True, help="FINDINGS.md")
    parser.add_argument("--broker-config", type=Path, required=True, help="base riffle TOML")
    parser.add_argument("--work-dir", type=Path, required=True, help="per-test dirs and logs")
    parser.add_argument("--timeout-s", type=int, default=TEST_TIMEOUT_S_DEFAULT)
    parser.add_argument("--keep-data", action="store_true", help="keep each broker's data dir")
    parser.add_argument("--jobs", type=int, default=1,
                        help="cases run side by side, each with its own broker (sweeps only: "
                             "timing-sensitive tests are less reliable on a loaded machine)")
    args = parser.parse_args()
    # test-runner runs in tests_dir: every path it is given must not depend on the caller's cwd.
    for name in ("tests_dir", "riffle", "allowlist", "findings", "broker_config", "work_dir"):
        setattr(args, name, getattr(args, name).resolve())
    return args


def selected_cases(args):
    if args.all:
        return all_cases(args.tests_dir)
    if args.cases:
        names = {case.label: case.name for case in all_cases(args.tests_dir)}
        try:
            cases = [Case(spec) for spec in args.cases]
        except ValueError as err:
            sys.exit(str(err))
        for case in cases:
            case.name = names.get(case.label, "(not a broker-facing test of this scenario)")
        return cases
    cases = read_allowlist(args.allowlist)
    return [case for case in cases if case.short] if args.short else cases


def report(args, case, ok, reason, elapsed_s):
    word = "PASS" if ok else "FAIL"
    print(f"{word} {case.label} {case.name} ({elapsed_s:.0f}s): {reason}", flush=True)
    if not ok:
        print(f"     logs: {args.work_dir / case.label.replace('@', '-')}/", flush=True)


def main():
    args = parse_args()
    missing = unexplained(all_cases(args.tests_dir), read_allowlist(args.allowlist),
                          args.findings.read_text())
    if missing:
        sys.exit(f"{args.findings}: say why these broker-facing tests are not on "
                 f"{args.allowlist.name}: {' '.join(missing)}")
    # Longest first: with several jobs, the run then ends close to (total time / jobs).
    cases = sorted(selected_cases(args), key=lambda case: -case.expected_s)
    passed = failed = 0
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = pool.map(lambda case: (case, *run_case(args, case)), cases)
        for case, ok, reason, elapsed_s in results:
            report(args, case, ok, reason, elapsed_s)
            passed, failed = passed + ok, failed + (not ok)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
