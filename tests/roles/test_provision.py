"""The workstation-side logic behind the roles (no lab needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pwrun.cluster import hostkeys, pyenv, slurm
from pwrun.errors import PwrunError
from pwrun.transport.ssh import SSHTarget

SINFO = "compute*|2|2|up|2000\ngpu|4+|1|up|64000+\ndebug|8|3|down|1\ndebug|8|1|down|n/a\n"


def test_sinfo_facts_name_partitions_default_and_cores() -> None:
    facts = slurm.parse_sinfo(SINFO, "site-a")
    assert facts["pwrun_scheduler"] == "slurm"
    assert facts["pwrun_partitions"] == ["compute", "gpu", "debug"]
    assert facts["pwrun_default_partition"] == "compute"
    assert facts["pwrun_cores_per_node"] == 2
    assert facts["pwrun_partition_info"]["gpu"] == {
        "cores_per_node": 4, "memory_mb": 64000, "nodes": 1, "up": True,
    }  # fmt: skip
    assert facts["pwrun_partition_info"]["debug"] == {
        "cores_per_node": 8, "memory_mb": 1, "nodes": 4, "up": False,
    }  # fmt: skip
    assert slurm.node_shape(facts, None) == slurm.NodeShape(cores=2, memory_mb=2000)
    assert slurm.node_shape(facts, "gpu") == slurm.NodeShape(cores=4, memory_mb=64000)
    assert slurm.node_shape(facts, "nope") == slurm.node_shape({}, None) == slurm.NodeShape()


@pytest.mark.parametrize("output", ["", "garbage line\n"])
def test_sinfo_facts_reject_empty_or_unexpected_output(output: str) -> None:
    with pytest.raises(PwrunError, match="site-a"):
        slurm.parse_sinfo(output, "site-a")


def test_probe_checks_python_and_says_what_to_change() -> None:
    ours = pyenv.workstation_python()
    probe = f"home=/home/u\npython={ours}.2\nmarker={{}}\n"
    assert pyenv.read_probe("site-a", 0, probe, True) == {
        "home": "/home/u", "python": f"{ours}.2", "marker": "{}", "markers": ["{}"],
    }  # fmt: skip
    with pytest.raises(PwrunError, match=r"site-a: the cluster's python3 is 3\.9") as info:
        pyenv.read_probe("site-a", 0, "home=/h\npython=3.9.18\nmarker=\n", True)
    assert "python_env_python" in str(info.value) and "python_env_backend: conda" in str(info.value)
    assert pyenv.read_probe("site-a", 0, "home=/h\npython=3.9.18\n", False)["marker"] == ""
    with pytest.raises(PwrunError, match=r"site-a: no python3 on PATH\. The cluster needs python3"):
        pyenv.read_probe("site-a", 3, "no python3 on PATH\r\n", True)


def test_plan_pins_the_workstations_parsl_and_keys_by_content() -> None:
    import parsl

    plan = pyenv.plan("", ["b-pkg", "a-pkg", "b-pkg"])
    assert plan["requirements"] == [f"parsl=={parsl.__version__}", "a-pkg", "b-pkg"]
    assert plan["wheelhouse_key"] == pyenv.plan("", ["a-pkg", "b-pkg"])["wheelhouse_key"]
    assert plan["wheelhouse_key"] != pyenv.plan("2025.1.1", ["a-pkg"])["wheelhouse_key"]


def test_tunnel_target_takes_connection_vars_and_ssh_options() -> None:
    target = SSHTarget.from_ansible(
        "10.0.0.5", "alice", 2222, "/keys/id",
        "-o UserKnownHostsFile=/tmp/kh -o StrictHostKeyChecking=no -oConnectTimeout=5"
        " -o 'ProxyJump bastion'",
    )  # fmt: skip
    assert (target.host, target.user, target.port, target.identity_file) == (
        "10.0.0.5", "alice", 2222, "/keys/id",
    )  # fmt: skip
    assert target.known_hosts == "/tmp/kh"
    assert target.options == ("ConnectTimeout=5", "ProxyJump=bastion")
    argv = target.argv()
    assert "StrictHostKeyChecking=yes" in argv and "StrictHostKeyChecking=no" not in argv


def test_pinned_keys_come_from_known_hosts_hashed_or_not(tmp_path: Path) -> None:
    key = tmp_path / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    pub = " ".join(key.with_suffix(".pub").read_text().split()[:2])
    known = tmp_path / "known_hosts"
    known.write_text(f"10.0.0.7 {pub}\n[10.0.0.8]:2222 {pub}\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known)], check=True, capture_output=True)
    assert hostkeys.pinned_keys("10.0.0.7", str(known)) == [pub]
    assert hostkeys.pinned_keys("10.0.0.8", str(known), 2222) == [pub]
    assert hostkeys.pinned_keys("10.0.0.9", str(known)) == []
    assert hostkeys.pinned_keys("10.0.0.7", None) == []
    args = f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes"
    assert hostkeys.known_hosts_file_from_args(args) == str(known)
