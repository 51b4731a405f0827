"""The PBS family without a cluster: scheduler facts from what qstat and pbsnodes print (the
facts command run by a real shell against stand-in commands), qstat's table read exactly, the
Torque and PBS Pro providers over a mocked ssh seam, teardown's qdel, and the lab's flavour.

The Slurm Torque wrappers' outputs below were captured on the lab (slurm-wlm-torque 22.05);
the PBS Pro ones follow its documented formats (`qstat -Q`, `pbsnodes -a`, `qstat --version`).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from parsl.jobs.states import JobState
from parsl.launchers import MpiExecLauncher, SingleNodeLauncher
from parsl.providers.errors import SubmitException

from pwrun.cluster import pbs
from pwrun.cluster.scheduler import facts_command, parse_facts
from pwrun.errors import InfrastructureError, PwrunError
from pwrun.lab import Lab, LabError, render
from pwrun.lab.model import HIDDEN_ON_TORQUE, LabRecord, Site
from pwrun.parslcfg.blocks import Blocks, plan_blocks
from pwrun.parslcfg.compat import qstat_states
from pwrun.parslcfg.executors import executor_spec
from pwrun.parslcfg.remote import RemotePBSProProvider, RemoteTorqueProvider
from pwrun.parslcfg.render import SiteEndpoint, cluster_provider
from pwrun.runstate import ExecutorRecord
from pwrun.transport.ssh import SSHTarget

WRAPPER_VERSION = "Unknown option: version\nUsage:\n    qstat [-f] [-a|-i|-r] [-n [-1]]\n"
WRAPPER_QUEUES = """\
Queue              Max   Tot   Ena   Str   Que   Run   Hld   Wat   Trn   Ext T
----------------   ---   ---   ---   ---   ---   ---   ---   ---   ---   --- -
compute              ?     ?   yes   yes     ?     ?     ?     ?     ?     ? E
gpu                  ?     ?   yes   yes     ?     ?     ?     ?     ?     ? E
"""
WRAPPER_NODES = """\
site-a-c1
    state = free
    np = 2
    ntype = cluster
    status = rectime=1795261471,state=free,slurmstate=idle,ncpus=2,availmem=2000mb

site-a-c2
    state = free
    np = 4
    ntype = cluster
"""
PRO_VERSION = "pbs_version = 2022.1.3\n"
PRO_QUEUES = """\
Queue              Max   Tot Ena Str   Que   Run   Hld   Wat   Trn   Ext Type
---------------- ----- ----- --- --- ----- ----- ----- ----- ----- ----- ----
workq                0     3 yes yes     0     3     0     0     0     0 Exec
debug                0     0 no  yes     0     0     0     0     0     0 Exec
"""
PRO_NODES = """\
cn001
     Mom = cn001.example.org
     state = free
     resources_available.ncpus = 64
     resources_available.host = cn001
     comment = a comment long enough that PBS Pro folds it onto the next line at about eighty
\tcharacters, with a tab
cn002
     state = job-busy
     resources_available.ncpus = 32
"""
WRAPPER_QSTAT = """\
Job id              Name             Username        Time Use S Queue          
------------------- ---------------- --------------- -------- - ---------------
1                   parsl.parsl.lbl. pwlab           00:00:00 R compute        
12                  parsl.parsl.lbl. pwlab           00:00:00 Q compute        
"""  # noqa: W291 (qstat pads its columns)
REMOTE = "/home/u/.pwrun/runs/r1/pbs"


def stand_ins(tmp_path: Path, commands: dict[str, str]) -> dict[str, str]:
    """A PATH holding only shell scripts named after `commands`, each printing its text (and
    logging its arguments to calls.log); the environment to run the facts command in."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in commands.items():
        (bin_dir / f"{name}.out").write_text(text)
        script = bin_dir / name
        script.write_text(
            f'#!/bin/sh\necho "{name} $*" >> {tmp_path}/calls.log\n/bin/cat {bin_dir}/{name}.out\n'
        )
        script.chmod(0o755)
    return {"PATH": str(bin_dir), "HOME": str(tmp_path)}


def facts_from(tmp_path: Path, commands: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = stand_ins(tmp_path, commands)
    return subprocess.run(
        ["/bin/sh", "-c", facts_command()], capture_output=True, text=True, env=env
    )


def test_the_torque_wrappers_give_pbs_facts_of_the_torque_flavour(tmp_path: Path) -> None:
    proc = facts_from(
        tmp_path, {"qstat": WRAPPER_VERSION + WRAPPER_QUEUES, "pbsnodes": WRAPPER_NODES}
    )
    facts = parse_facts(proc.stdout, "site-a", proc.returncode, proc.stderr)
    assert facts == {
        "pwrun_scheduler": "pbs",
        "pwrun_pbs_flavour": "torque",
        "pwrun_partitions": ["compute", "gpu"],
        "pwrun_default_partition": "compute",
        "pwrun_cores_per_node": 2,
        "pwrun_partition_info": {
            "compute": {"cores_per_node": 2, "nodes": 2, "up": True},
            "gpu": {"cores_per_node": 2, "nodes": 2, "up": True},
        },
    }
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert calls == ["qstat --version", "qstat -Q", "pbsnodes -a"]


def test_pbs_pro_is_told_by_its_version_and_folded_lines_are_joined(tmp_path: Path) -> None:
    proc = facts_from(tmp_path, {"qstat": PRO_VERSION + PRO_QUEUES, "pbsnodes": PRO_NODES})
    facts = parse_facts(proc.stdout, "hpc", proc.returncode, proc.stderr)
    assert facts["pwrun_pbs_flavour"] == "pbspro" and facts["pwrun_cores_per_node"] == 32
    assert facts["pwrun_partitions"] == ["workq", "debug"]
    assert facts["pwrun_partition_info"]["debug"]["up"] is False
    nodes = pbs.parse_pbsnodes(PRO_NODES)
    assert nodes["cn001"]["comment"].endswith("eightycharacters, with a tab")
    assert nodes["cn002"]["state"] == "job-busy"


def test_sinfo_wins_and_no_scheduler_is_one_clear_line(tmp_path: Path) -> None:
    proc = facts_from(tmp_path, {"sinfo": "compute*|2|2|up|2000\n", "qstat": WRAPPER_QUEUES})
    assert parse_facts(proc.stdout, "s", proc.returncode)["pwrun_scheduler"] == "slurm"
    assert "qstat" not in (tmp_path / "calls.log").read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = facts_from(empty, {})
    assert proc.returncode == 127
    with pytest.raises(PwrunError) as raised:
        parse_facts(proc.stdout, "site-x", proc.returncode, proc.stderr)
    message = str(raised.value)
    assert message.startswith("site-x: no scheduler facts (no scheduler: neither sinfo nor qstat")
    assert len(message.splitlines()) == 1


def test_a_failing_qstat_or_no_queue_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PwrunError, match="site-a: no scheduler facts"):
        parse_facts("== pbs\n== version\n== queues\n", "site-a", 2, "qstat: cannot connect")
    with pytest.raises(PwrunError, match="site-a: qstat -Q lists no queues"):
        parse_facts("== pbs\n== queues\nQueue\n---\n== nodes\n", "site-a")


def test_qstat_rows_go_to_their_own_job_exactly() -> None:
    # Parsl's TorqueProvider gives a row to the first id that starts with it: job 1's row
    # would be job 12's when 12 comes first, as with the wrappers' bare numeric ids.
    assert qstat_states(WRAPPER_QSTAT, ["12", "1"]) == {"12": "Q", "1": "R"}
    # Torque truncates long ids: a row names the one job whose id starts with it
    torque = "Job ID  Name  User  Time S Queue\n---\n123.hpc-server.exam  j  u  0 R batch\n"
    assert qstat_states(torque, ["123.hpc-server.example.org"]) == {
        "123.hpc-server.example.org": "R"
    }
    assert qstat_states(torque, ["123.hpc-server.example.org", "123.hpc-server.examX"]) == {}
    assert qstat_states("", ["1"]) == {}


class LoginNode:
    """Stands in for SSHTarget.run on a PBS login node: qsub prints `next_id`."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.qsub: tuple[int, str, str] = (0, "7\n", "")
        self.qstat = WRAPPER_QSTAT.replace("12  ", "7   ")
        self.down = False

    def run(self, target: SSHTarget, command: str, **kwargs: Any) -> subprocess.CompletedProcess:
        if self.down:
            raise InfrastructureError("site: command timed out")
        self.commands.append(command)
        rc, out, err = 0, "", ""
        if " qsub " in command:
            rc, out, err = self.qsub
        elif command.startswith("qstat "):
            out = self.qstat
        return subprocess.CompletedProcess(command, rc, out, err)


@pytest.fixture
def login(monkeypatch: pytest.MonkeyPatch) -> LoginNode:
    node = LoginNode()
    monkeypatch.setattr(SSHTarget, "run", lambda self, *a, **kw: node.run(self, *a, **kw))
    monkeypatch.setattr(SSHTarget, "write_file", lambda self, *a, **kw: None)
    return node


def torque(tmp_path: Path, **kwargs: Any) -> RemoteTorqueProvider:
    provider = RemoteTorqueProvider(
        ssh=SSHTarget("10.0.0.1"), remote_dir=REMOTE, launcher=SingleNodeLauncher(), **kwargs
    )
    provider.script_dir = str(tmp_path)
    return provider


def test_qsub_runs_in_the_script_directory_and_each_job_is_recorded(
    login: LoginNode, tmp_path: Path
) -> None:
    provider = torque(tmp_path, queue="compute", account="proj")
    assert provider.submit("process_worker_pool.py", 1, "parsl.pbs.block-0") == "7"
    qsub, record = login.commands
    script = f"{REMOTE}/submit_scripts/{next(tmp_path.iterdir()).name}"
    assert qsub == f"cd -- {REMOTE}/submit_scripts && qsub  -q compute -A proj {script}"
    assert record == f"echo 7 >> {REMOTE}/jobs"
    assert "#PBS -l nodes=1:ppn=1" in next(tmp_path.iterdir()).read_text()


def test_a_failed_qsub_fails_the_block_with_its_message(login: LoginNode, tmp_path: Path) -> None:
    login.qsub = (1, "", "qsub: Unknown queue MSG=cannot locate queue\n")
    with pytest.raises(SubmitException) as raised:
        torque(tmp_path, queue="nope").submit("true", 1, "parsl.pbs.block-0")
    assert "cannot locate queue" in str(raised.value) and "exit 1" in str(raised.value)
    assert not any("jobs" in command for command in login.commands)


def test_status_reads_qstat_and_an_unreachable_site_changes_nothing(
    login: LoginNode, tmp_path: Path
) -> None:
    provider = torque(tmp_path)
    provider.submit("true", 1, "b0")  # job 7
    login.qsub = (0, "1\n", "")
    provider.submit("true", 1, "b1")  # job 1
    statuses = provider.status(["7", "1"])
    assert [s.state for s in statuses] == [JobState.PENDING, JobState.RUNNING]
    assert login.commands[-1] == "qstat 7 1"
    login.down = True
    assert [s.state for s in provider.status(["7", "1"])] == [JobState.PENDING, JobState.RUNNING]
    login.down = False
    login.qstat = ""  # both gone from qstat: ended
    assert {s.state for s in provider.status(["7", "1"])} == {JobState.COMPLETED}


def endpoint() -> SiteEndpoint:
    return SiteEndpoint("site-p", SSHTarget("10.0.0.1"), "192.168.1.1", 1, 2, REMOTE, "act")


def test_pbs_labels_render_the_providers_they_name() -> None:
    spec = executor_spec({"site": "p", "provider": "torque", "queue": "q", "account": "a"})
    provider = cluster_provider(spec, endpoint())
    assert isinstance(provider, RemoteTorqueProvider)
    assert (provider.queue, provider.account, provider.remote_dir) == ("q", "a", REMOTE)
    assert isinstance(provider.launcher, SingleNodeLauncher)  # not Torque's AprunLauncher
    pro = cluster_provider(executor_spec({"site": "p", "select_options": "ngpus=1"}), endpoint())
    assert isinstance(pro, RemotePBSProProvider) and pro.select_options == "ngpus=1"


def test_pbs_blocks_ask_the_cores_their_workers_use_from_the_facts(
    login: LoginNode, tmp_path: Path
) -> None:
    """A minimal PBS entry fills its queue's node (one worker per core, as on Slurm); Torque
    asks them as `ppn`, PBS Pro as `ncpus`, and the launcher still starts one pool per node."""
    facts = {"pwrun_default_partition": "batch", "pwrun_partition_info": {
        "batch": {"cores_per_node": 8}, "small": {"cores_per_node": 4}}}  # fmt: skip
    site = dataclasses.replace(endpoint(), facts=facts)
    minimal = cluster_provider(executor_spec({"site": "p", "provider": "torque"}), site)
    assert isinstance(minimal, RemoteTorqueProvider) and minimal.ppn == 8
    assert plan_blocks(executor_spec({"site": "p", "provider": "torque"}), facts) == Blocks(
        8, None, None, 8, "single_node"
    )
    two = executor_spec({"site": "p", "provider": "torque", "queue": "small",
                         "max_workers_per_node": 2, "cores_per_worker": 1.5})  # fmt: skip
    assert plan_blocks(two, facts).cores_per_node == 3
    pro = cluster_provider(executor_spec({"site": "p", "queue": "q", "cores_per_node": 6}), site)
    assert isinstance(pro, RemotePBSProProvider) and pro.cpus_per_node == 6
    unknown = cluster_provider(executor_spec({"site": "p", "provider": "torque"}), endpoint())
    assert isinstance(unknown, RemoteTorqueProvider) and unknown.ppn == 1  # Parsl's default

    minimal.script_dir = str(tmp_path)
    minimal.submit("process_worker_pool.py", 1, "parsl.pbs.block-0")
    script = next(tmp_path.iterdir()).read_text()
    assert "#PBS -l nodes=1:ppn=8" in script
    assert script.count("process_worker_pool.py") == 1  # one pool: ppn is not the launcher's


def test_a_multi_node_pbs_block_starts_a_pool_on_every_node_or_says_why_not() -> None:
    """PBS has no srun: a multi-node block names its launcher (mpiexec fills every node), never
    idles silently with the single-node one."""
    entry = {"site": "p", "provider": "torque", "nodes_per_block": 2}
    with pytest.raises(ValueError, match="a PBS block of 2 nodes needs a launcher: mpiexec"):
        executor_spec(entry)
    spread = cluster_provider(executor_spec({**entry, "launcher": "mpiexec"}), endpoint())
    assert isinstance(spread.launcher, MpiExecLauncher) and spread.nodes_per_block == 2
    first = cluster_provider(executor_spec({**entry, "launcher": "single_node"}), endpoint())
    assert isinstance(first.launcher, SingleNodeLauncher)
    with pytest.raises(ValueError, match="launcher"):
        executor_spec({**entry, "launcher": "srun"})


def run_blocks_command(tmp_path: Path, action: str, jobs: str | None) -> tuple[str, list[str]]:
    """`blocks_command(action)` of a PBS executor, run by sh against stand-in qstat and qdel."""
    remote = tmp_path / "remote"
    remote.mkdir()
    if jobs is not None:
        (remote / "jobs").write_text(jobs)
    live = WRAPPER_QSTAT + "3                   parsl.parsl.lbl. pwlab  00:00:00 C compute\n"
    env = stand_ins(tmp_path, {"qstat": live, "qdel": ""})
    env["PATH"] += ":/usr/bin:/bin"  # cat and awk
    record = ExecutorRecord("pbs", "site-p", SSHTarget("h"), str(remote), "t", scheduler="pbs")
    proc = subprocess.run(
        ["/bin/sh", "-c", record.blocks_command(action)],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    log = tmp_path / "calls.log"
    return proc.stdout, log.read_text().splitlines() if log.exists() else []


def test_teardown_qdels_every_recorded_job(tmp_path: Path) -> None:
    _, calls = run_blocks_command(tmp_path, "cancel", "1\n12\n3\n")
    assert calls == ["qdel 1", "qdel 12", "qdel 3"]


def test_status_lists_the_recorded_jobs_not_ended(tmp_path: Path) -> None:
    listed, calls = run_blocks_command(tmp_path, "list", "1\n12\n3\n")
    assert (listed.split(), calls) == (["1", "12"], ["qstat 1 12 3"])


def test_no_job_recorded_asks_nothing(tmp_path: Path) -> None:
    assert run_blocks_command(tmp_path, "cancel", None) == ("", [])


def test_the_torque_lab_flavour(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = LabRecord(tmp_path, [Site.named(0, 3, 2, "torque"), Site.named(1, 4, 1)])
    assert lab.sites[0].hidden_commands == HIDDEN_ON_TORQUE and lab.sites[1].hidden_commands == ()
    assert {"sinfo", "squeue", "scancel"} <= set(HIDDEN_ON_TORQUE)
    assert not {"sbatch", "salloc", "srun"} & set(HIDDEN_ON_TORQUE)  # qsub runs them
    hosts = render.inventory(lab)
    assert "pwrun_scheduler: pbs" in hosts and "pwrun_scheduler: slurm" in hosts
    lab.save()
    assert Lab.load(tmp_path).sites[0].scheduler == "torque"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(LabError, match="unknown lab scheduler 'pbs'"):
        Lab.up(directory=tmp_path / "lab", scheduler="pbs")
    assert not (tmp_path / "lab").exists()
