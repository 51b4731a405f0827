"""`pwrun run --monitor` records the run with Parsl's monitoring; `pwrun monitor` serves it on
loopback until Ctrl-C."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

from pwrun.transport.tunnel import free_loopback_port
from tests.run.invoke import WORKFLOWS, pwrun, pwrun_env

TALLY = WORKFLOWS / "tally.py"


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as answer:
        assert answer.status == 200
        return answer.read().decode()


def served_pages(home: Path, run_id: str, workflow: str) -> dict[str, str]:
    """The index and the run's workflow page, as `pwrun monitor RUN_ID` serves them; checks that
    Ctrl-C stops the server."""
    port = free_loopback_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pwrun.cli", "monitor", run_id, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=home, env=pwrun_env(home),
        start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[0]
        assert url == f"http://127.0.0.1:{port}/", proc.stderr.read() if proc.stderr else ""
        index = get(url)
        marker = f'">{workflow}</a>'
        assert marker in index
        link = index[: index.index(marker)].rsplit('href="', 1)[1]
        pages = {"index": index, "workflow": get(url + link)}
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C
        assert proc.wait(timeout=30) == 130
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    left = subprocess.run(["pgrep", "-f", f"visualization.app .*{run_id}"], capture_output=True)
    assert left.stdout == b"", "parsl-visualize left running"
    return pages


def monitoring_db(run_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(run_dir / "runinfo" / "monitoring.db")


def test_a_monitored_local_run_is_served_on_loopback(tmp_path: Path) -> None:
    proc = pwrun("run", str(TALLY), str(tmp_path / "markers"), "0", "--monitor", home=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "state" / "runs").iterdir()
    with monitoring_db(run_dir) as db:
        tasks = dict(db.execute("select task_func_name, count(*) from task group by 1"))
    assert tasks == {"double": 20, "flaky": 1, "broken": 2}
    pages = served_pages(tmp_path, run_dir.name, "tally.py")
    assert all(app in pages["workflow"] for app in ("double", "flaky", "broken"))


def test_monitor_names_a_run_without_monitoring(tmp_path: Path) -> None:
    assert pwrun("monitor", home=tmp_path).stderr == (
        "error: no run was recorded with monitoring: `pwrun run --monitor` first\n"
    )
    (tmp_path / "nothing.py").write_text("print('no tasks')\n")
    proc = pwrun("run", "nothing.py", home=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "state" / "runs").iterdir()
    proc = pwrun("monitor", run_dir.name, home=tmp_path)
    assert (proc.returncode, proc.stderr) == (
        2, f"error: run {run_dir.name} was not recorded with monitoring: `pwrun run --monitor` "
        "first\n")  # fmt: skip
