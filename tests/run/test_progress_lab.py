"""A cluster label's progress, report and monitoring: blocks are Slurm jobs, workers connect
through the tunnel, and Parsl's monitoring messages come back the same way (compute nodes
reach nothing else)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from pwrun.lab import Lab
from tests.run.test_monitor import TALLY, monitoring_db, pwrun, served_pages
from tests.run.test_reports import PROGRESS
from tests.run.test_run_lab import assert_nothing_left

pytestmark = pytest.mark.lab


def test_a_cluster_labels_progress_report_and_monitoring(lab: Lab, tmp_path: Path) -> None:
    executors = tmp_path / "executors.yml"
    executors.write_text("map:\n  site: site-a\n  partition: compute\n  max_workers_per_node: 2\n")
    markers = f"/tmp/{uuid.uuid4().hex}"  # on the compute node that runs the flaky task
    proc = pwrun("run", str(TALLY), markers, "0", "2", "map", "-e", str(executors),
                 "-i", str(lab.inventory), "--monitor", "--report", "report.json",
                 "--progress-interval", "0.5", home=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["labels"] == {"map": {"done": 21, "failed": 2, "retried": 3}}
    assert set(report["timings"]) == {
        "inventory",
        "provision",
        "tunnels",
        "checks",
        "workflow",
        "teardown",
    }
    lines = [m for line in proc.stderr.splitlines() if (m := PROGRESS.fullmatch(line))]
    assert lines and {m["label"] for m in lines} == {"map"}, proc.stderr[-3000:]
    assert any(int(m["blocks"]) >= 1 and int(m["workers"]) >= 1 for m in lines)  # a Slurm job
    assert re.search(r"│ map\s+│ 21\s+│ 2\s+│ 3\s+│", proc.stderr)

    (run_dir,) = (tmp_path / "state" / "runs").iterdir()
    with monitoring_db(run_dir) as db:
        tries = db.execute("select task_executor, hostname from try").fetchall()
        nodes = {row[0] for row in db.execute("select hostname from node")}
    computes = {node.hostname for node in lab.sites[0].computes}
    assert len(tries) == 26  # 23 tasks, 3 of them tried twice
    assert {executor for executor, _ in tries} == {"map"}
    assert {host for _, host in tries} <= computes and nodes <= computes and nodes
    assert_nothing_left(lab)
    pages = served_pages(tmp_path, run_dir.name, "tally.py")
    assert "broken" in pages["workflow"]
