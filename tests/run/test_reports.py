"""`pwrun run --report/--junit` and its progress lines, on the embedded local site: what a CI
job reads, however the run ends."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import signal
import subprocess
import sys
from pathlib import Path

import junitparser

from tests.run.invoke import start_slow_run

WORKFLOWS = Path(__file__).with_name("workflows")
TALLY = WORKFLOWS / "tally.py"
PROGRESS = re.compile(  # a plain progress line of a run with one label
    r"progress \d+s: (?P<label>\w+) pending=(\d+) running=(\d+) done=(\d+) failed=(\d+) "
    r"retried=(\d+) blocks=(?P<blocks>\d+) workers=(?P<workers>\d+)"
)


def pwrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pwrun.cli", "run", *args],
        capture_output=True, text=True, timeout=300, cwd=cwd,
        env={**os.environ, "PWRUN_HOME": str(cwd / "state")},
    )  # fmt: skip


def only_run(cwd: Path) -> Path:
    (run_dir,) = (cwd / "state" / "runs").iterdir()
    return run_dir


def cases(junit: Path) -> dict[str, junitparser.TestCase]:
    """The test cases of a JUnit file, read as a CI dashboard reads them."""
    xml = junitparser.JUnitXml.fromfile(str(junit))
    (suite,) = list(xml)
    return {case.name: case for case in suite}


def test_report_and_junit_count_each_label_and_app_and_progress_goes_by(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    proc = pwrun(str(TALLY), str(tmp_path), "0", "1.5", "--report", "out/report.json",
                 "--junit", "out/junit.xml", "--progress-interval", "0.5",
                 cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "out/report.json").read_text())
    run_dir = only_run(tmp_path)
    assert report["exit_code"] == 0 and report["error"] is None
    assert report["run_id"] == run_dir.name and report["status"] == "down"
    assert set(report["timings"]) == {"workflow", "teardown"}
    # retries=1: flaky and both broken tasks were tried twice
    assert report["labels"] == {"local": {"done": 21, "failed": 2, "retried": 3}}
    apps = {name: (a["tasks"], a["failed"], a["retried"], a["labels"])
            for name, a in report["apps"].items()}  # fmt: skip
    assert apps == {"broken": (2, 2, 2, ["local"]), "double": (20, 0, 0, ["local"]),
                    "flaky": (1, 0, 1, ["local"])}  # fmt: skip

    found = cases(tmp_path / "out/junit.xml")
    assert set(found) == {"broken", "double", "flaky", "workflow"}
    assert [case.is_passed for case in found.values()].count(False) == 1
    (failure,) = found["broken"].result
    assert isinstance(failure, junitparser.Failure)
    assert re.fullmatch(r"2 of 2 tasks failed; first: task \d+ on local: ValueError: broken "
                        "\ufffd\\[31m[01]", failure.message)  # fmt: skip
    assert failure.text.count("ValueError: broken") == 2

    lines = [m for line in proc.stderr.splitlines() if (m := PROGRESS.fullmatch(line))]
    assert lines, proc.stderr[-3000:]
    assert {m["label"] for m in lines} == {"local"}
    last = [int(n) for n in lines[-1].groups()[1:6]]
    assert last == [0, 0, 21, 2, 3]  # pending, running, done, failed, retried: all ended
    assert any(int(m["workers"]) > 0 for m in lines)  # its block's workers
    summary = proc.stderr.split("tasks\n", 1)[1]
    assert re.search(r"│ local\s+│ 21\s+│ 2\s+│ 3\s+│", summary), proc.stderr[-2000:]


def test_a_failing_workflow_fails_its_junit_workflow_case(tmp_path: Path) -> None:
    proc = pwrun(str(TALLY), str(tmp_path), "5", "--report", "r.json", "--junit", "j.xml",
                 "--progress-interval", "0", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 5, proc.stderr[-3000:]
    assert not PROGRESS.search(proc.stderr)  # interval 0: no lines
    assert json.loads((tmp_path / "r.json").read_text())["exit_code"] == 5
    (failure,) = cases(tmp_path / "j.xml")["workflow"].result
    assert failure.message == "exit code 5"


def test_bad_input_is_reported_too(tmp_path: Path) -> None:
    executors = tmp_path / "x.yml"
    executors.write_text("here: {site: local}\n")
    proc = pwrun(str(WORKFLOWS / "bad_label.py"), "-e", str(executors), "--report", "r.json",
                 "--junit", "j.xml", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["exit_code"] == 2 and report["run_id"] is None and report["labels"] == {}
    assert report["error"] == proc.stderr.removeprefix("error: ").strip()
    (failure,) = cases(tmp_path / "j.xml")["workflow"].result
    assert failure.message.startswith("exit code 2: ") and "has no label 'nope'" in failure.message


def test_a_report_in_a_missing_directory_is_refused_first(tmp_path: Path) -> None:
    proc = pwrun(str(TALLY), str(tmp_path), "0", "--report", "nowhere/r.json", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == f"error: --report {tmp_path}/nowhere/r.json: no directory " \
        f"{tmp_path}/nowhere\n"  # fmt: skip
    assert not (tmp_path / "state" / "runs").exists()


def test_an_interrupted_run_still_writes_its_report(tmp_path: Path) -> None:
    proc = start_slow_run(tmp_path, "local", "--report", "r.json", "--junit", "j.xml")
    try:
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    report = json.loads((tmp_path / "r.json").read_text())
    assert (report["exit_code"], report["error"], report["status"]) == (130, "interrupted", "down")
    assert report["labels"]["local"]["done"] == 1  # the first nap; the two long ones never ended
    (failure,) = cases(tmp_path / "j.xml")["workflow"].result
    assert failure.message == "exit code 130: interrupted"


def test_on_a_terminal_the_progress_is_a_live_table(tmp_path: Path) -> None:
    """stderr a terminal (a pseudo-terminal here): the live table, redrawn, no plain lines."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pwrun.cli", "run", str(TALLY), str(tmp_path), "0", "2"],
        stdin=slave, stdout=slave, stderr=slave, cwd=tmp_path,
        env={**os.environ, "PWRUN_HOME": str(tmp_path / "state"), "COLUMNS": "120"},
    )  # fmt: skip
    os.close(slave)
    output = b""
    with contextlib.suppress(OSError):  # EIO once the terminal's other end is closed
        while chunk := os.read(master, 65536):
            output += chunk
    os.close(master)
    assert proc.wait(timeout=60) == 0, output[-3000:]
    text = output.decode()
    assert re.search(r"tasks, \d+s", text) and "pending" in text and "workers" in text
    assert "\x1b[" in text  # drawn with terminal controls
    assert not PROGRESS.search(text)
    assert re.search(r"│ local\s+│ 21\s+│ 2\s+│ 3\s+│", text)  # the summary table, at the end
