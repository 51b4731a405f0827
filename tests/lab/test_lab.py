"""The lab behaves like real, isolated clusters, and leaves nothing behind."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from pwrun.lab import Lab
from tests.conftest import require_lab

pytestmark = pytest.mark.lab

PROBE = (
    "python3 -c 'import socket,sys; s=socket.socket(); s.settimeout(2);"
    " print(s.connect_ex((sys.argv[1], int(sys.argv[2]))))' "
)


@pytest.fixture
def workstation_port() -> int:
    """A port listening on every workstation address: only isolation can keep sites out."""
    with socket.socket() as server:
        server.bind(("0.0.0.0", 0))
        server.listen()
        yield server.getsockname()[1]


def connect_result(node, address: str, port: int) -> int:
    """errno of a TCP connect from `node` (0 = connected)."""
    proc = node.exec(PROBE + f"{address} {port}", user="pwlab")
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout)


def test_sbatch_over_ssh_runs_on_a_compute_node(lab: Lab) -> None:
    site = lab.sites[0]
    proc = lab.ssh(
        site,
        "jid=$(sbatch --parsable --wrap 'hostname; id -un') &&"
        " while squeue -h -j $jid | grep -q .; do sleep 0.1; done && cat slurm-$jid.out",
    )
    assert proc.returncode == 0, proc.stderr
    host, user = proc.stdout.split()
    assert host in {n.hostname for n in site.computes}
    assert user == "pwlab"


def test_partitions_and_login_identity(lab: Lab) -> None:
    proc = lab.ssh("site-b", "hostname; sinfo -h -o '%P %D'")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "site-b-login"
    assert sorted(lines[1:]) == ["compute* 2", "gpu 1"]


def test_gpu_partition_runs_on_its_own_node(lab: Lab) -> None:
    site = lab.sites[1]
    proc = lab.ssh(site, "srun -p gpu hostname")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == site.computes[-1].hostname


def test_host_key_checking_is_on(lab: Lab, tmp_path: Path) -> None:
    """A known_hosts that does not hold the site's key makes ssh refuse it."""
    other = tmp_path / "known_hosts"
    other.write_text("")
    proc = subprocess.run(
        ["ssh", "-F", str(lab.ssh_config), "-o", f"UserKnownHostsFile={other}", "site-a", "true"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 255
    assert "Host key verification failed" in proc.stderr


def test_login_is_key_only(lab: Lab) -> None:
    proc = subprocess.run(
        ["ssh", "-F", str(lab.ssh_config), "-o", "IdentityFile=/dev/null",
         "-o", "PubkeyAuthentication=no", "site-a", "true"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 255
    assert "Permission denied (publickey)" in proc.stderr


def test_compute_node_cannot_reach_the_workstation(lab: Lab, workstation_port: int) -> None:
    site = lab.sites[0]
    for node in (site.login, *site.computes):
        for address in (site.workstation_address, "127.0.0.1"):
            assert connect_result(node, address, workstation_port) != 0, (node.hostname, address)


def test_sites_cannot_reach_each_other(lab: Lab) -> None:
    a, b = lab.sites
    for node in (a.login, a.computes[0]):
        for address in (b.address, b.internal_address, b.computes[0].address):
            assert connect_result(node, address, 22) != 0, (node.hostname, address)


def test_compute_node_reaches_its_login_node_only_inside(lab: Lab) -> None:
    """Slurm traffic flows inside a site; the workstation sees only ssh on the login node."""
    a = lab.sites[0]
    assert connect_result(a.computes[0], a.internal_address, 6817) == 0  # slurmctld
    with socket.socket() as s:
        s.settimeout(1)
        assert s.connect_ex((a.address, 6817)) != 0
        assert s.connect_ex((a.computes[0].address, 6818)) != 0


def test_gateway_ports_no_binds_remote_forwards_to_loopback(lab: Lab) -> None:
    """As on most HPC login nodes, `-R 0.0.0.0:P` silently binds loopback only."""
    site = lab.sites[0]
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        tunnel = subprocess.Popen(
            ["ssh", "-F", str(lab.ssh_config), "-N", "-o", "ExitOnForwardFailure=yes",
             "-R", f"0.0.0.0:{port}:127.0.0.1:{port}", site.name],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            while connect_result(site.login, "127.0.0.1", port) != 0:
                assert time.monotonic() < deadline, "remote forward never came up"
                time.sleep(0.2)
            assert connect_result(site.computes[0], site.internal_address, port) != 0
        finally:
            tunnel.terminate()
            tunnel.wait(10)


def test_nodes_have_their_own_views(lab: Lab) -> None:
    """Sites see neither the workstation's files nor each other's /tmp."""
    a, b = lab.sites
    marker = f"/tmp/pwrun-view-{time.monotonic_ns()}"
    assert a.login.exec(f"touch {marker}").returncode == 0
    assert b.login.exec(f"test -e {marker}").returncode != 0
    assert a.computes[0].exec(f"test -e {marker}").returncode != 0
    assert not Path(marker).exists()
    assert a.login.exec(f"test -e {lab.directory}").returncode != 0
    shared_home = "/home/pwlab/.pwrun-shared-home"
    assert a.login.exec(f"touch {shared_home}", user="pwlab").returncode == 0
    assert a.computes[0].exec(f"test -e {shared_home}").returncode == 0
    assert b.login.exec(f"test -e {shared_home}").returncode != 0


def test_up_then_down_leaves_nothing(tmp_path: Path) -> None:
    require_lab()
    before_tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    before_passwd = Path("/etc/passwd").read_text()
    lab = Lab.up(sites=1, compute_nodes=1, directory=tmp_path / "lab")
    pids = [n.pid for n in lab.sites[0].nodes]
    assert lab.ssh("site-a", "sinfo -h -o %t").stdout.strip() == "idle"
    lab.down()
    assert lab.leftovers() == []
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids)
    after = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert after == before_tables
    assert Path("/etc/passwd").read_text() == before_passwd
    assert not (tmp_path / "lab").exists()
