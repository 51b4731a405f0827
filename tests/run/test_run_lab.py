"""`pwrun run` across two lab sites: tasks run where their labels say, nothing is left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pwrun.lab import Lab

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]


def pwrun(*args: str, home: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pwrun.cli", *args],
        capture_output=True, text=True, timeout=timeout, cwd=home,
        env={**os.environ, "PWRUN_HOME": str(home / "state")},
    )  # fmt: skip


def assert_nothing_left(lab: Lab) -> None:
    tunnels = subprocess.run(["pgrep", "-f", "-R 127.0.0.1:"], capture_output=True, text=True)
    assert tunnels.stdout == "", "a tunnel process is left"
    for site in lab.sites:
        proc = lab.ssh(site, "squeue -h -u pwlab; ls -A ~/.pwrun/runs 2>/dev/null; true")
        assert proc.stdout.strip() == "", f"{site.name}: left {proc.stdout!r}"


def test_multisite_run(lab: Lab, tmp_path: Path) -> None:
    proc = pwrun(
        "run", str(ROOT / "examples/multisite.py"),
        "-e", str(ROOT / "examples/multisite.executors.yml"), "-i", str(lab.inventory),
        home=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    a, b = lab.sites
    compute_nodes = {f"{n.hostname}/compute" for n in a.computes}
    mapped = [line.removeprefix("map ran on ") for line in lines if line.startswith("map ran")]
    assert len(mapped) == 8 and set(mapped) <= compute_nodes
    assert lines[-1] == f"sum of squares 140 computed on {b.computes[-1].hostname}/gpu"
    assert_nothing_left(lab)


def test_unknown_site_is_a_clear_error(lab: Lab, tmp_path: Path) -> None:
    executors = tmp_path / "executors.yml"
    executors.write_text("map:\n  site: site-z\n")
    proc = pwrun("run", str(ROOT / "examples/hello.py"), "-e", str(executors),
                 "-i", str(lab.inventory), home=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    assert "map.site: no cluster 'site-z' in the inventory" in proc.stderr
    assert "Traceback" not in proc.stderr
