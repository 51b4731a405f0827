"""Blocks as the executors file says: every node of a block runs workers, Slurm's resource
options reach sbatch and Slurm takes them (or refuses before any job), MPI ranks span nodes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pwrun.lab import Lab
from tests.run.test_run_lab import WORKFLOWS, assert_nothing_left, pwrun

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One PWRUN_HOME for these runs: the sites are provisioned once."""
    return tmp_path_factory.mktemp("blocks")


def run(home: Path, lab: Lab, executors: str, name: str, *args: str) -> tuple[list[str], Path]:
    """`pwrun run` of a workflow with this executors file; its output lines and run dir."""
    path = home / name
    path.write_text(executors)
    proc = pwrun("run", str(WORKFLOWS / args[0]), *args[1:], "-e", str(path),
                 "-i", str(lab.inventory), home=home)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = re.findall(r"\((/\S+/runs/[^)\s]+)\)", proc.stderr)[-1]
    return proc.stdout.splitlines(), Path(run_dir)


def block_script(run_dir: Path) -> str:
    """The submit script of the run's (first) block."""
    (script,) = (run_dir / "runinfo").glob("*/submit_scripts/parsl.*.block-0.*[0-9]")
    return script.read_text()


def test_seed_executors_json_runs_map_tasks_on_both_nodes_of_a_block(lab: Lab, home: Path) -> None:
    seed = {
        "map": {
            "POOL": "site-a", "PARTITION": "compute", "NODES": "2", "WALLTIME": "00:10:00",
            "CORES_PER_WORKER": "1", "HOST_USER": "__USER__", "WORKER_PORT_1": "55233",
        }
    }  # fmt: skip
    lines, run_dir = run(home, lab, json.dumps(seed), "executors.json", "where.py", "map", "2", "8")
    hosts = {line.split()[0] for line in lines}
    jobs = {line.split()[1] for line in lines}
    assert len(lines) == 8 and hosts == {n.hostname for n in lab.sites[0].computes}
    assert len(jobs) == 1  # one block of two nodes, a worker pool on each (srun launcher)
    script = block_script(run_dir)
    assert "#SBATCH --nodes=2" in script and "\nsrun --ntasks 2 " in script
    # no cores, workers or memory given: the node's (2 cores, 2000 MB), one worker per core
    assert "#SBATCH --cpus-per-task=2" in script and "#SBATCH --mem=1g" in script
    assert "--max_workers_per_node=2 " in script
    assert_nothing_left(lab)


def test_each_slurm_field_reaches_sbatch_and_slurm_runs_the_block(lab: Lab, home: Path) -> None:
    executors = (
        "gpu:\n  site: site-a\n  partition: gpu\n  account: physics\n  qos: high\n"
        "  constraint: lab&gpu\n  exclusive: true\n  mem_per_node: 1\n  cores_per_node: 2\n"
        "  gpus_per_node: 2\n  walltime: '00:05:00'\n"
    )
    lines, run_dir = run(home, lab, executors, "gpu.yml", "where.py", "gpu", "1", "4")
    gpu_node = lab.sites[0].computes[-1].hostname
    assert {line.split()[0] for line in lines} == {gpu_node}
    assert {line.split()[2] for line in lines} == {"gpu=0", "gpu=1"}  # one GPU per worker
    script = block_script(run_dir)
    options = ("--partition=gpu", "--account=physics", "--qos=high", "--constraint=lab&gpu",
               "--exclusive", "--mem=1g", "--cpus-per-task=2", "--gpus-per-node=2")  # fmt: skip
    for option in options:
        assert f"#SBATCH {option}" in script.splitlines(), option
    assert_nothing_left(lab)


@pytest.mark.parametrize(
    ("setting", "slurm_says"),
    [
        ("partition: nope", "Invalid partition name specified"),
        ("constraint: nofeature", "Invalid feature specification"),
    ],
)
def test_a_block_slurm_refuses_fails_the_run_before_any_job(
    lab: Lab, tmp_path: Path, setting: str, slurm_says: str
) -> None:
    executors = tmp_path / "executors.yml"
    executors.write_text(f"map:\n  site: site-a\n  {setting}\n")
    proc = pwrun("run", str(WORKFLOWS / "where.py"), "map", "1", "1", "-e", str(executors),
                 "-i", str(lab.inventory), home=tmp_path)  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-3000:]
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith(f"error: {executors}: map: site-a refuses its blocks: ")
    assert slurm_says in line and "Traceback" not in proc.stderr
    assert not list((tmp_path / "state" / "runs").glob("*/runinfo"))  # the workflow never ran
    assert_nothing_left(lab)


def test_mpi_ranks_run_on_two_compute_nodes(lab: Lab, home: Path) -> None:
    executors = "ranks:\n  site: site-a\n  kind: mpi\n  nodes_per_block: 2\n"
    lines, run_dir = run(home, lab, executors, "mpi.yml", "mpi_ranks.py", "ranks", "2")
    assert sorted(lines) == sorted(n.hostname for n in lab.sites[0].computes)
    script = block_script(run_dir)
    assert "#SBATCH --nodes=2" in script and "--enable_mpi_mode " in script
    assert "\nsrun " not in script  # one pool, on the first node (simple launcher)
    assert_nothing_left(lab)
