"""The Parsl configuration pwrun renders, and Slurm driven over ssh, with the ssh seam mocked."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path
from typing import Any

import pytest
from parsl.executors import HighThroughputExecutor
from parsl.jobs.states import JobState
from parsl.launchers import SimpleLauncher
from parsl.providers import LocalProvider

from pwrun.errors import InfrastructureError
from pwrun.parslcfg import INTERCHANGE_LAUNCH_CMD, STRATEGY_PERIOD, local_config
from pwrun.parslcfg.executors import executor_spec
from pwrun.parslcfg.remote import RemoteSlurmProvider
from pwrun.parslcfg.render import (
    SiteEndpoint,
    copy_certificates,
    make_certificates,
    render,
    site_certificates,
)
from pwrun.parslcfg.staging import SiteExecutor, SiteMPIExecutor
from pwrun.transport.ssh import SSHTarget

REMOTE = "/home/u/.pwrun/runs/r1/map"


class LoginNode:
    """Stands in for `SSHTarget.run`: records each command, answers like Slurm."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail: Exception | None = None
        self.answers: dict[str, subprocess.CompletedProcess] = {}  # by command's first words

    def run(
        self, target: SSHTarget, command: str, input: str | None = None, **kwargs: Any
    ) -> subprocess.CompletedProcess:
        self.calls.append({"host": target.host, "command": command, "input": input, **kwargs})
        if self.fail:
            raise self.fail
        for start, answer in self.answers.items():
            if command.startswith(start):
                return answer
        stdout = {"sbatch": "Submitted batch job 42\n", "sacct": "42 RUNNING\n"}
        return subprocess.CompletedProcess(command, 0, stdout.get(command.split()[0], ""), "")

    def commands(self) -> list[str]:
        return [call["command"] for call in self.calls]


@pytest.fixture
def login(monkeypatch: pytest.MonkeyPatch) -> LoginNode:
    node = LoginNode()
    monkeypatch.setattr(SSHTarget, "run", lambda self, *a, **kw: node.run(self, *a, **kw))
    return node


@pytest.fixture
def provider(login: LoginNode, tmp_path: Path) -> RemoteSlurmProvider:
    made = RemoteSlurmProvider(
        ssh=SSHTarget("10.0.0.1", "u"), remote_dir=REMOTE, partition="compute", cmd_timeout=9
    )
    made.script_dir = str(tmp_path / "submit_scripts")
    Path(made.script_dir).mkdir()
    return made


# --- RemoteSlurmProvider --------------------------------------------------------------------


def test_init_probes_sacct_on_the_login_node(
    provider: RemoteSlurmProvider, login: LoginNode
) -> None:
    assert login.calls == [
        {"host": "10.0.0.1", "command": "sacct -X", "input": None, "timeout": 9, "check": False}
    ]


def test_submit_writes_the_script_on_the_login_node_with_remote_paths(
    provider: RemoteSlurmProvider, login: LoginNode
) -> None:
    assert provider.submit("process_worker_pool.py", 1, "block") == "42"
    local = Path(provider.script_dir or "")
    (script,) = local.iterdir()  # the run keeps a copy, with its local paths
    remote = f"{REMOTE}/submit_scripts/{script.name}"
    assert f"#SBATCH --output={script}.stdout" in script.read_text()
    write, sbatch = login.calls[1:]
    assert write["command"] == (
        f"umask 077 && mkdir -p -- {REMOTE}/submit_scripts && cat > {remote} "
        f"&& chmod 700 -- {remote}"
    )
    assert f"#SBATCH --output={remote}.stdout" in write["input"]
    assert "#SBATCH --partition=compute" in write["input"]
    assert str(local) not in write["input"]
    assert sbatch["command"] == f"sbatch {remote}"


def test_status_and_cancel_run_through_the_seam(
    provider: RemoteSlurmProvider, login: LoginNode
) -> None:
    job = provider.submit("process_worker_pool.py", 1, "block")
    assert [status.state for status in provider.status([job])] == [JobState.RUNNING]
    assert provider.cancel([job]) == [True]
    status, cancel = login.commands()[-2:]
    assert status.startswith("sacct -X --noheader") and status.endswith("--job '42'")
    assert cancel == "scancel 42"


def test_refusal_is_sbatch_test_only_of_the_blocks_own_script(
    provider: RemoteSlurmProvider, login: LoginNode, tmp_path: Path
) -> None:
    said = "sbatch: error: invalid partition specified: x\nallocation failure: Invalid partition\n"
    login.answers["sbatch --test-only "] = subprocess.CompletedProcess("", 1, "", said)
    checks = tmp_path / "checks"
    checks.mkdir()
    assert provider.refusal(str(checks)) == (
        "sbatch: error: invalid partition specified: x; allocation failure: Invalid partition"
    )
    write, sbatch = login.calls[1:]
    (script,) = checks.iterdir()  # the script Parsl wrote, under the checks directory
    assert "#SBATCH --partition=compute" in write["input"] and script.name.startswith("pwrun-")
    assert sbatch["command"] == f"sbatch --test-only {REMOTE}/submit_scripts/{script.name}"
    assert provider.script_dir == str(tmp_path / "submit_scripts") and not provider.resources
    ok = "sbatch: Job 3 to start at 2026-01-01T00:00:00 using 1 processors on nodes n1\n"
    login.answers["sbatch --test-only "] = subprocess.CompletedProcess("", 0, "", ok)
    assert provider.refusal(str(checks)) is None and not provider.resources
    assert provider.submit("process_worker_pool.py", 1, "block") == "42"  # for real again
    assert login.commands()[-1].startswith("sbatch /")


def test_a_refusal_ssh_could_not_ask_is_infrastructure(
    provider: RemoteSlurmProvider, login: LoginNode, tmp_path: Path
) -> None:
    login.answers["sbatch --test-only "] = subprocess.CompletedProcess("", 255, "", "no route\n")
    with pytest.raises(InfrastructureError, match=r"10\.0\.0\.1: sbatch --test-only: no route"):
        provider.refusal(str(tmp_path))


def test_a_timeout_is_what_parsl_expects_of_a_failed_command(
    provider: RemoteSlurmProvider, login: LoginNode
) -> None:
    login.fail = InfrastructureError("10.0.0.1: command timed out after 9s")
    assert provider.execute_wait("squeue") == (-1, "", "10.0.0.1: command timed out after 9s")
    assert provider.execute_wait("squeue", timeout=2) == (-1, "", login.fail.args[0])
    assert [call["timeout"] for call in login.calls[-2:]] == [9, 2]


# --- render ---------------------------------------------------------------------------------


def endpoint(n: int) -> SiteEndpoint:
    return SiteEndpoint(
        site=f"site{n}",
        ssh=SSHTarget(f"10.0.0.{n}", "u"),
        internal_address=f"192.168.{n}.1",
        local_port=50000 + n,
        remote_port=60000 + n,
        remote_dir=f"/home/u/.pwrun/runs/r1/site{n}",
        worker_init=f"source /env{n}/bin/activate",
    )


@pytest.fixture
def rendered(login: LoginNode, tmp_path: Path) -> tuple[dict[str, HighThroughputExecutor], Path]:
    entries: dict[str, dict[str, Any]] = {
        "here": {
            "site": "local", "max_workers_per_node": 2, "worker_init": "echo here",
            "env": {"FOO": "b a'r"}, "max_blocks": 2, "parallelism": 0.5, "cores_per_worker": 0.5,
        },
        "a": {
            "site": "site1", "partition": "p1", "nodes_per_block": 2, "init_blocks": 0,
            "min_blocks": 1, "max_blocks": 3, "parallelism": 0.5, "walltime": "01:00:00",
            "cores_per_worker": 2.0, "max_workers_per_node": 4,
            "scheduler_options": "#SBATCH --qos=x", "env": {"B": "two words", "A": "1"},
            "worker_init": "module load x",
        },
        "b": {"site": "site2"},
    }  # fmt: skip
    specs = {label: executor_spec(entry) for label, entry in entries.items()}
    cert_dir = make_certificates(tmp_path)
    config = render(specs, {"a": endpoint(1), "b": endpoint(2)}, tmp_path, cert_dir)
    assert config.run_dir == str(tmp_path / "runinfo") and config.strategy_period == STRATEGY_PERIOD
    executors = {ex.label: ex for ex in config.executors if isinstance(ex, HighThroughputExecutor)}
    assert list(executors) == ["here", "a", "b"]  # every one an HTEX, in the file's order
    return executors, cert_dir


def test_every_executor_is_encrypted_with_its_interchange_in_its_own_session(
    rendered: tuple[dict[str, HighThroughputExecutor], Path],
) -> None:
    for executor in rendered[0].values():
        assert executor.encrypted and executor.address == "127.0.0.1"
        assert executor.interchange_launch_cmd == list(INTERCHANGE_LAUNCH_CMD)


def test_a_local_label_runs_on_this_machine(
    rendered: tuple[dict[str, HighThroughputExecutor], Path],
) -> None:
    here = rendered[0]["here"]
    assert isinstance(here.provider, LocalProvider)
    assert (here.max_workers_per_node, here.cores_per_worker) == (2, 0.5)
    assert (here.provider.max_blocks, here.provider.parallelism) == (2, 0.5)
    # the label's variables, quoted as on a cluster, then its own worker_init
    assert here.provider.worker_init == "export FOO='b a'\"'\"'r'\n\necho here"
    assert here.cert_dir is None  # Parsl makes the local one's


def test_a_site_label_reaches_the_tunnel_with_the_runs_certificates(
    rendered: tuple[dict[str, HighThroughputExecutor], Path],
) -> None:
    executors, cert_dir = rendered
    a, b = executors["a"], executors["b"]
    assert (a.worker_port, b.worker_port) == (50001, 50002)
    assert a.cert_dir == b.cert_dir == str(cert_dir)
    cmd = a.launch_cmd or ""
    assert " -a 192.168.1.1 " in cmd and " --port=60001 " in cmd and " --logconf=None " in cmd
    assert " --cert_dir /home/u/.pwrun/runs/r1/site1/certificates " in cmd
    assert " -a 192.168.2.1 " in (b.launch_cmd or "")
    assert a.worker_logdir_root == "/home/u/.pwrun/runs/r1/site1/worker_logs"
    assert (a.cores_per_worker, a.max_workers_per_node) == (2.0, 4)


def test_a_site_labels_blocks_are_slurm_jobs_on_its_login_node(
    rendered: tuple[dict[str, HighThroughputExecutor], Path],
) -> None:
    provider = rendered[0]["a"].provider
    assert isinstance(provider, RemoteSlurmProvider)
    assert provider.ssh == endpoint(1).ssh and provider.remote_dir == endpoint(1).remote_dir
    assert (provider.partition, provider.nodes_per_block, provider.walltime) == (
        "p1", 2, "01:00:00",
    )  # fmt: skip
    assert (provider.init_blocks, provider.min_blocks, provider.max_blocks) == (0, 1, 3)
    assert provider.parallelism == 0.5 and provider.cmd_timeout == 60
    assert "#SBATCH --qos=x" in provider.scheduler_options
    assert "--exclusive" not in provider.scheduler_options
    # the site's env first, then the label's variables, then its own worker_init
    assert provider.worker_init == (
        "source /env1/bin/activate\nexport B='two words'\nexport A=1\n\nmodule load x\n"
    )


def test_kind_mpi_is_an_encrypted_mpi_executor_sized_from_the_facts(
    login: LoginNode, tmp_path: Path
) -> None:
    specs = {
        "mpi": executor_spec({"site": "site1", "kind": "mpi", "nodes_per_block": 2,
                              "max_workers_per_block": 2, "mpi_launcher": "mpiexec"}),
        "gpu": executor_spec({"site": "site2", "partition": "gpu", "account": "a1", "qos": "q",
                              "constraint": "x&y", "exclusive": True, "gpus_per_node": 2}),
    }  # fmt: skip
    facts = {
        "pwrun_default_partition": "compute",
        "pwrun_partition_info": {
            "compute": {"cores_per_node": 4, "memory_mb": 8192},
            "gpu": {"cores_per_node": 2, "memory_mb": 4096},
        },
    }
    sites = {
        label: dataclasses.replace(endpoint(n), facts=facts)
        for n, label in ((1, "mpi"), (2, "gpu"))
    }
    config = render(specs, sites, tmp_path, make_certificates(tmp_path))
    mpi, gpu = config.executors
    assert isinstance(mpi, SiteMPIExecutor) and isinstance(gpu, SiteExecutor)
    assert mpi.encrypted and mpi.mpi_launcher == "mpiexec" and mpi.max_workers_per_block == 2
    assert mpi.interchange_launch_cmd == list(INTERCHANGE_LAUNCH_CMD)
    assert isinstance(mpi.provider, RemoteSlurmProvider)
    assert isinstance(mpi.provider.launcher, SimpleLauncher)
    assert (mpi.provider.cores_per_node, mpi.provider.mem_per_node) == (4, 8)  # compute's nodes
    assert isinstance(gpu.provider, RemoteSlurmProvider)
    assert (gpu.provider.cores_per_node, gpu.provider.mem_per_node) == (2, 4)  # gpu's nodes
    assert gpu.available_accelerators == ["0", "1"] and gpu.max_workers_per_node == 2
    for line in ("--partition=gpu", "--account=a1", "--qos=q", "--constraint=x&y", "--exclusive",
                 "--gpus-per-node=2"):  # fmt: skip
        assert f"#SBATCH {line}\n" in gpu.provider.scheduler_options


def test_each_site_gets_the_workers_keys(login: LoginNode, tmp_path: Path) -> None:
    cert_dir = make_certificates(tmp_path)
    copy_certificates(cert_dir, endpoint(1))
    written = {call["command"].split(" cat > ")[1]: call["input"] for call in login.calls}
    remote = "/home/u/.pwrun/runs/r1/site1/certificates"
    assert set(written) == {
        f"{remote}/{name} && chmod 600 -- {remote}/{name}" for name in site_certificates(cert_dir)
    }
    client = (cert_dir / "client.key_secret").read_text()
    assert (
        written[f"{remote}/client.key_secret && chmod 600 -- {remote}/client.key_secret"] == client
    )


def test_local_config_is_one_local_executor(tmp_path: Path) -> None:
    config = local_config(tmp_path)
    (executor,) = config.executors
    assert isinstance(executor, HighThroughputExecutor) and executor.label == "local"
    assert isinstance(executor.provider, LocalProvider) and executor.provider.worker_init == ""
    assert (executor.provider.init_blocks, executor.provider.max_blocks) == (1, 1)
    assert config.run_dir == str(tmp_path / "runinfo")


def test_labels_on_one_site_and_run_share_its_file_store(login: LoginNode, tmp_path: Path) -> None:
    specs = {label: executor_spec({"site": "site1"}) for label in ("a", "b", "c")}
    other = dataclasses.replace(endpoint(1), remote_dir="/scratch/r1/c")
    sites = {
        "a": endpoint(1),
        "b": dataclasses.replace(endpoint(1), remote_dir=f"{endpoint(1).remote_dir}b"),
        "c": other,
    }
    config = render(specs, sites, tmp_path, make_certificates(tmp_path))
    a, b, c = config.executors
    assert (
        isinstance(a, SiteExecutor) and isinstance(b, SiteExecutor) and isinstance(c, SiteExecutor)
    )
    assert a.files is b.files and a.files.store == "/home/u/.pwrun/runs/r1/files"
    assert c.files.store == "/scratch/r1/files" and a.remote_dir == endpoint(1).remote_dir
    assert repr(a).startswith("SiteExecutor(")
