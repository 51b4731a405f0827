"""Failover, timeouts and resume on lab sites: a site's network cut mid-run (nftables in its
login node), a bash_app outliving its timeout on a compute node, kill -9 then resume."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pwrun.lab import Lab, network
from pwrun.lab.model import Site
from tests.run.invoke import WORKFLOWS, killed_after, start_run
from tests.run.test_failover_local import TASKS, checkpointed, leftovers, runs
from tests.run.test_run_lab import assert_nothing_left, down_leaves_nothing, pwrun

pytestmark = pytest.mark.lab
# Detection as configured below: missed heartbeats for THRESHOLD s, then an ssh probe (5 s).
PERIOD, THRESHOLD, PROBE = 2, 8, 5


@contextmanager
def network_cut(site: Site) -> Iterator[None]:
    """`site`'s login node drops everything to and from the workstation until the block ends;
    its compute nodes still reach it."""
    network.cut(site)
    try:
        yield
    finally:
        network.restore(site)


def executors(tmp_path: Path, fallback: bool) -> Path:
    path = tmp_path / "executors.yml"
    path.write_text(
        f"map:\n  site: site-a\n  max_workers_per_node: 2\n  heartbeat_period: {PERIOD}\n"
        f"  heartbeat_threshold: {THRESHOLD}\n"
        + ("  fallback: [spare]\nspare:\n  site: site-b\n  max_workers_per_node: 2\n" if fallback
           else "")
    )  # fmt: skip
    return path


@pytest.mark.parametrize("fallback", [True, False], ids=["fallback", "no-fallback"])
def test_a_site_cut_mid_run_fails_over_or_fails_clearly(
    lab: Lab, tmp_path: Path, fallback: bool
) -> None:
    site_a, site_b = lab.sites
    args = [str(WORKFLOWS / "failover.py"), "12", "2", "-e", str(executors(tmp_path, fallback)),
            "-i", str(lab.inventory)]  # fmt: skip
    with killed_after(start_run(tmp_path, *args, until="done 2 ")) as proc, network_cut(site_a):
        cut = time.monotonic()
        out, err = proc.communicate(timeout=400)
        ended = time.monotonic() - cut
    lines = out.splitlines()
    if fallback:
        assert proc.returncode == 0, err[-3000:]
        assert lines[-1] == f"sum {sum(i * i for i in range(12))}"
        hosts = {line.split(" on ")[1] for line in lines if line.startswith("done")}
        assert hosts & {node.hostname for node in site_b.computes}, lines
        assert "site site-a lost: unreachable over ssh after ManagerLost" in err
        assert "teardown incomplete on a lost site" in err
    else:
        assert proc.returncode == 1, err[-3000:]
        assert lines[-1].startswith(
            "failed: NoFallbackLeft: app work on label map: site site-a lost: unreachable "
            "over ssh after ManagerLost"
        ), lines
        assert lines[-1].endswith("(map: no fallback)")
        assert "Traceback" not in err
    # detected after the heartbeats and the probe, never a hang (the cut site's teardown
    # then waits for ssh to give up: bounded by ssh's own timeouts)
    assert ended < THRESHOLD + PROBE + 200, ended
    down_leaves_nothing(lab, tmp_path)


def test_a_bash_app_past_its_timeout_is_killed_with_its_children_on_the_node(
    lab: Lab, tmp_path: Path
) -> None:
    mark = str(random.randrange(10**5, 10**6))
    path = tmp_path / "executors.yml"
    path.write_text("map:\n  site: site-a\n  max_workers_per_node: 1\n  task_timeout: 2\n")
    proc = pwrun("run", str(WORKFLOWS / "timeouts.py"), mark, "map", "-e", str(path),
                 "-i", str(lab.inventory), home=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == [
        "AppTimeout: app stubborn on label map timed out after 2 s of execution: killed, "
        "with the processes it started",
        "AppTimeout: app sleepy on label map timed out after 1 s of execution: killed, with "
        "the processes it started",
        "queued tasks: [0, 0]",
    ]
    assert leftovers(mark) == ""  # the lab's nodes share this kernel: pgrep sees their processes
    assert_nothing_left(lab)


def test_kill_9_then_down_then_resume_runs_only_the_rest(lab: Lab, tmp_path: Path) -> None:
    path = tmp_path / "executors.yml"
    path.write_text("map:\n  site: site-a\n  max_workers_per_node: 1\n")
    workflow = str(WORKFLOWS / "resumable.py")
    site = ["-e", str(path), "-i", str(lab.inventory)]
    proc = start_run(tmp_path, workflow, str(TASKS), "first", "0.5", *site,
                     until=f"done {TASKS // 2}")  # fmt: skip
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    down_leaves_nothing(lab, tmp_path)
    (killed,) = runs(tmp_path)
    done = checkpointed(killed)
    assert TASKS // 2 <= done < TASKS
    resumed = pwrun("run", workflow, str(TASKS), "second", "0.5", "--resume", *site, home=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = sum(i * i for i in range(TASKS))
    assert resumed.stdout.splitlines()[-1] == f"sum {expected} ran {TASKS - done}"
    assert_nothing_left(lab)
