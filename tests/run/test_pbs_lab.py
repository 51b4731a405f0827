"""`pwrun run` on a Torque-flavoured lab site: Slurm behind Debian's Torque wrappers (qsub,
qstat, qdel, pbsnodes), with sinfo, squeue and scancel hidden from the login node's PATH."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pwrun.lab import Lab
from tests.conftest import require_lab
from tests.run.test_run_lab import (
    ROOT,
    WORKFLOWS,
    assert_nothing_left_here,
    down_leaves_nothing,
    pwrun,
    start_slow_run,
)

pytestmark = pytest.mark.lab
# No provider: the site's scheduler facts choose torque.
EXECUTORS = "pbs:\n  site: site-a\n  queue: compute\n  max_blocks: 2\n  max_workers_per_node: 2\n"
# A job still running or queued, as qstat lists it (C: completed, E: exiting).
LIVE_JOBS = "qstat | awk 'NR > 2 && $5 !~ /^[CE]$/'"


@pytest.fixture(scope="module")
def torque_lab() -> Iterator[Lab]:
    """One Torque-flavoured site with two compute nodes."""
    require_lab()
    with Lab.up(sites=1, compute_nodes=2, scheduler="torque") as running:
        yield running


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One PWRUN_HOME for the module: the site is provisioned once."""
    return tmp_path_factory.mktemp("pbs-home")


def assert_nothing_left(lab: Lab) -> None:
    """Nothing here; on the site no live job, no run directory, no job output in the home."""
    assert_nothing_left_here(lab)
    proc = lab.ssh("site-a", f"{LIVE_JOBS}; ls -A ~/.pwrun/runs; ls ~")
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr


def test_the_site_offers_pbs_commands_and_no_slurm_queries(torque_lab: Lab) -> None:
    proc = torque_lab.ssh("site-a", "command -v qsub qstat qdel pbsnodes; command -v sinfo")
    assert proc.stdout.split() == [f"/usr/bin/{c}" for c in ("qsub", "qstat", "qdel", "pbsnodes")]
    assert proc.returncode != 0  # no sinfo
    for hidden in ("sinfo", "squeue", "scancel"):
        assert torque_lab.ssh("site-a", hidden).returncode == 127


def test_a_label_runs_on_the_torque_site_end_to_end(torque_lab: Lab, home: Path) -> None:
    executors = home / "pbs.executors.yml"
    executors.write_text(EXECUTORS)
    proc = pwrun("run", str(WORKFLOWS / "hosts.py"), "pbs", "-e", str(executors),
                 "-i", str(torque_lab.inventory), home=home)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.splitlines()[-1])
    assert len(results) == 20
    computes = {node.hostname for node in torque_lab.site("site-a").computes}
    assert {host for host, _ in results} <= computes
    assert all(job for _, job in results)  # each in a batch job qsub submitted
    record = next((home / "state/sites/site-a").glob("*.json"))  # one per fingerprint
    facts = json.loads(record.read_text())["facts"]
    assert (facts["pwrun_scheduler"], facts["pwrun_pbs_flavour"]) == ("pbs", "torque")
    assert facts["pwrun_partitions"] == ["compute", "gpu"] and facts["pwrun_cores_per_node"] == 2
    run = json.loads(next((home / "state/runs").glob("*/run.json")).read_text())
    assert [e["scheduler"] for e in run["executors"]] == ["pbs"]
    script = next((home / "state/runs").glob("*/runinfo/*/submit_scripts/*.submit")).read_text()
    assert "#PBS -l nodes=1:ppn=2" in script and "#SBATCH" not in script  # the node's 2 cores
    assert_nothing_left(torque_lab)


def test_pwrun_down_qdels_the_jobs_of_a_killed_run(torque_lab: Lab, home: Path) -> None:
    executors = home / "pbs.executors.yml"
    executors.write_text(EXECUTORS)
    proc = start_slow_run(torque_lab, home, "pbs", executors=executors)
    proc.kill()  # pwrun -9: Parsl never cancels its blocks
    proc.wait()
    live = torque_lab.ssh("site-a", LIVE_JOBS).stdout.split()
    assert live, "the killed run's job should still be running"
    status = pwrun("status", home=home)
    assert "(dead)" in status.stdout and live[0] in status.stdout, status.stdout + status.stderr
    down_leaves_nothing(torque_lab, home)


def test_slurm_fields_on_a_pbs_site_are_refused_naming_them(torque_lab: Lab, home: Path) -> None:
    """A Slurm-looking entry without provider is refused once the facts say the site is PBS,
    before any job is submitted."""
    executors = home / "wrong.executors.yml"
    executors.write_text("pbs:\n  site: site-a\n  partition: compute\n")
    proc = pwrun("run", str(ROOT / "examples/hello.py"), "-e", str(executors),
                 "-i", str(torque_lab.inventory), home=home)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "wrong.executors.yml: pbs.partition: not allowed with a PBS provider" in proc.stderr
    assert_nothing_left(torque_lab)
