"""Tunnels under a flaky network, on lab sites: a tunnel whose ssh is killed mid-run is re-opened
and the run completes with every result once; a site whose network is cut is declared lost and the
run (no fallback) ends in bounded time naming it; status answers within seconds meanwhile; once the
network is back, `pwrun down` leaves nothing on the site (no relay, no ssh session, no job)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pwrun.lab import Lab, network
from pwrun.process import wait_until
from tests.run.invoke import pwrun_env, start_run
from tests.run.test_run_lab import (
    ONE_SITE,
    WORKFLOWS,
    assert_nothing_left,
    down_leaves_nothing,
    pwrun,
)

pytestmark = pytest.mark.lab
STEADY = WORKFLOWS / "steady.py"


def start(lab: Lab, home: Path, *args: str, executors: Path = ONE_SITE) -> subprocess.Popen:
    """`pwrun run WORKFLOW ARGS` on site-a; returns once the workflow printed `running`."""
    site = ("-e", str(executors), "-i", str(lab.inventory))
    return start_run(home, *args, *site, until=("running", "waiting"))


def tunnel_record(home: Path) -> dict:
    (path,) = (home / "state" / "tunnels").glob("*.json")
    return json.loads(path.read_text())


def run_record(home: Path) -> dict:
    (path,) = (home / "state" / "runs").glob("*/run.json")
    return json.loads(path.read_text())


def relay_left(lab: Lab, port: int) -> str:
    """The login node's relays of any pwrun tunnel, and whatever listens on `port` there."""
    listing = lab.ssh(
        "site-a", f"pgrep -af '[ ]pwrun-tunnel='; ss -Hltn 'sport = :{port}'; true", timeout=20
    )
    return listing.stdout.strip()


def test_a_killed_tunnel_is_reopened_and_every_task_runs_once(lab: Lab, tmp_path: Path) -> None:
    log = f"pwrun-executions-{tmp_path.name}"
    proc = start(lab, tmp_path, str(STEADY), "16", "1.5", f"~/{log}")
    assert proc.stdout is not None
    results = []
    try:
        port = tunnel_record(tmp_path)["remote_port"]
        for _ in range(3):  # each time tasks run on the workers, none just sent (see README)
            results.append(next(line for line in proc.stdout if line.startswith("result")))
            time.sleep(0.2)
            pid = tunnel_record(tmp_path)["process"]["pid"]
            os.kill(pid, signal.SIGKILL)
            assert wait_until(lambda p=pid: tunnel_record(tmp_path)["process"]["pid"] != p, 15)
        out, errors = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, errors[-3000:]
    results += [line for line in out.splitlines() if line.startswith("result")]
    assert sorted(tuple(map(int, line.split()[1:3])) for line in results) == [
        (i, i * i) for i in range(16)
    ]
    executions = lab.ssh("site-a", f"cat ~/{log}; rm -f ~/{log}").stdout.split()
    assert sorted(map(int, executions)) == list(range(-1, 16)), "a task ran twice, or never"
    for n in (1, 2, 3):
        assert f"site-a: tunnel of map re-opened on port {port} (reconnect {n})" in errors
    executor = run_record(tmp_path)["executors"][0]
    assert executor["reconnects"] == 3 and executor["down"]
    assert relay_left(lab, port) == ""
    assert_nothing_left(lab)


def test_a_cut_site_ends_the_run_in_bounded_time_and_down_finishes_later(
    lab: Lab, tmp_path: Path
) -> None:
    # Heartbeats slower than the supervisor: its tunnel re-opens are what find the site lost
    # (failover's own detection, after missed heartbeats: tests/run/test_failover_lab.py).
    executors = tmp_path / "executors.yml"
    executors.write_text(ONE_SITE.read_text() + "  heartbeat_threshold: 600\n")
    proc = start(lab, tmp_path, str(WORKFLOWS / "slow.py"), executors=executors)
    port = tunnel_record(tmp_path)["remote_port"]
    network.cut(lab.site("site-a"))
    try:
        cut = time.monotonic()
        try:
            _, errors = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        took = time.monotonic() - cut
        assert proc.returncode == 3, errors[-3000:]
        last = errors.strip().splitlines()[-1]
        assert last.startswith("error: site site-a lost: 3 re-opens of its tunnel failed"), last
        assert "teardown incomplete: map: " in last and "pwrun down" in last
        assert took < 75, f"{took:.0f}s from the cut to pwrun's exit"
        assert "Traceback" not in errors
        started = time.monotonic()
        status = subprocess.run(
            [sys.executable, "-m", "pwrun.cli", "status"], capture_output=True, text=True,
            timeout=60, env={**pwrun_env(tmp_path), "COLUMNS": "300"},
        )  # fmt: skip
        assert time.monotonic() - started < 15, "status waited on the unreachable site"
        row = next(line for line in status.stdout.splitlines() if "map" in line)
        assert "unreachable" in row and "teardown-failed" in row, status.stdout
        down = pwrun("down", home=tmp_path, timeout=60)
        assert down.returncode == 3 and "torn down" not in down.stdout.replace("NOT torn", "")
    finally:
        network.restore(lab.site("site-a"))
    down_leaves_nothing(lab, tmp_path)
    assert relay_left(lab, port) == ""
    assert "map" not in pwrun("status", home=tmp_path).stdout
