"""The lab's pure parts, without root: names and addresses, rendered configs and firewall rules,
client files, hidden paths, lab.json, and the process helpers on this test's own processes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

import pwrun
from pwrun.lab import Lab, LabError, files, network, processes, render
from pwrun.lab.model import LabRecord, Site, free_slots
from pwrun.process import ProcessRef, running


@pytest.fixture
def lab(tmp_path: Path) -> LabRecord:
    """A lab model of two sites (slots 3 and 7) of two compute nodes each; nothing runs."""
    return LabRecord(tmp_path, [Site.named(0, 3, 2), Site.named(1, 7, 2)])


def test_names_and_addresses(lab: LabRecord) -> None:
    a, b = lab.sites
    assert [n.hostname for n in b.nodes] == ["site-b-login", "site-b-c1", "site-b-c2"]
    assert [n.netns for n in b.nodes] == ["pwlab7", "pwlab7c1", "pwlab7c2"]
    assert [n.address for n in b.nodes] == ["10.200.7.2", "10.201.7.11", "10.201.7.12"]
    assert [n.role for n in b.nodes] == ["login", "compute", "compute"]
    assert (b.address, b.internal_address, b.workstation_address) == (
        "10.200.7.2",
        "10.201.7.1",
        "10.200.7.1",
    )
    assert (a.outer_veth, a.nft_table) == ("pwl3w", "pwrun_lab_3")
    assert lab.site("site-b") is b
    assert lab.node_dir(b, b.computes[0]) == lab.directory / "sites/site-b/nodes/site-b-c1"
    assert b.login.enter() == ["nsenter", "-t", "0", "-a"]


def test_free_slots_skip_every_lab_namespace() -> None:
    names = {"pwlab1", "pwlab2c1", "pwlab4c3", "pwlabx", "other3", "pwlab5extra"}
    assert free_slots(names, 3) == [3, 5, 6]
    with pytest.raises(LabError, match="no free lab slots"):
        free_slots({f"pwlab{n}" for n in range(1, 200)}, 2)


def test_slurm_conf(lab: LabRecord) -> None:
    text = render.slurm_conf(lab.sites[1])
    assert text.endswith("State=UP\n") and "\n\n" not in text
    lines = text.splitlines()
    assert lines[:2] == ["ClusterName=siteb", "SlurmctldHost=site-b-login(10.201.7.1)"]
    essentials = {
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SchedulerParameters=batch_sched_delay=0",
        "ReturnToService=2",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/filetxt",
        "StateSaveLocation=/var/spool/slurmctld",
    }
    assert essentials <= set(lines)
    assert lines[-4:] == [
        "NodeName=site-b-c1 NodeAddr=10.201.7.11 CPUs=2 RealMemory=2000 Features=lab State=UNKNOWN",
        "NodeName=site-b-c2 NodeAddr=10.201.7.12 CPUs=2 RealMemory=2000 Features=lab,gpu "
        "Gres=gpu:2 State=UNKNOWN",
        "PartitionName=compute Nodes=site-b-c1,site-b-c2 Default=YES MaxTime=INFINITE State=UP",
        "PartitionName=gpu Nodes=site-b-c2 MaxTime=INFINITE State=UP",
    ]
    assert len(lines) == 31
    assert render.gres_conf(lab.sites[1]).splitlines() == [
        "NodeName=site-b-c2 Name=gpu File=/dev/null",
        "NodeName=site-b-c2 Name=gpu File=/dev/zero",
    ]
    other = render.slurm_conf(lab.sites[0])
    assert "ClusterName=sitea\n" in other and "site-b" not in other


def test_sshd_config(lab: LabRecord) -> None:
    text = render.sshd_config(lab.sites[0])
    assert text.endswith("sftp-server\n")
    lines = text.splitlines()
    assert lines[0] == "ListenAddress 10.200.3.2"
    essentials = {
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "PermitRootLogin no",
        "AllowUsers pwlab",
        "AllowTcpForwarding yes",
        "GatewayPorts no",
        "Subsystem sftp /usr/lib/openssh/sftp-server",
    }
    assert essentials <= set(lines)
    assert len(lines) == 15


def test_hosts_and_accounts(lab: LabRecord) -> None:
    assert render.hosts(lab.sites[0]) == (
        "127.0.0.1 localhost\n10.201.3.1 site-a-login\n"
        "10.201.3.11 site-a-c1\n10.201.3.12 site-a-c2\n"
    )
    accounts = render.account_lines()
    assert accounts["passwd"].startswith("pwlab:x:4242:4242:")
    assert accounts["shadow"].startswith("pwlab:*:")  # no password, yet not locked
    assert accounts["group"] == "pwlab:x:4242:\n"


def test_firewall_rules(lab: LabRecord) -> None:
    login = render.login_firewall()
    assert 'iifname "eth0" tcp dport 22 accept' in login
    assert login.rstrip().splitlines()[-3] == '  iifname "eth0" drop'
    workstation = render.workstation_firewall(lab.sites[1])
    assert workstation.startswith("table inet pwrun_lab_7 {\n")
    assert network.LAB_TABLE.fullmatch(workstation.splitlines()[0].rstrip(" {"))
    assert workstation.count('"pwl7w" drop') == 3  # new input, forwarded in, forwarded out
    assert "dport" not in workstation  # the workstation takes nothing new from a site


def test_network_commands(lab: LabRecord, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[tuple[str, ...], str | None]] = []
    monkeypatch.setattr(network, "run", lambda *argv, input=None: calls.append((argv, input)))
    network.create(lab.sites[0])
    argvs = [argv for argv, _ in calls]
    for netns in ("pwlab3", "pwlab3c1", "pwlab3c2"):
        assert ("ip", "netns", "add", netns) in argvs
    assert ("ip", "netns", "exec", "pwlab3", "sysctl", "-q", "-w", "net.ipv4.ip_forward=0") in argvs
    rules = {argv[:-2]: input for argv, input in calls if argv[-2:] == ("-f", "-")}
    assert rules == {
        ("ip", "netns", "exec", "pwlab3", "nft"): render.login_firewall(),
        ("nft",): render.workstation_firewall(lab.sites[0]),
    }


def test_client_files(lab: LabRecord) -> None:
    for k, site in enumerate(lab.sites):
        key = lab.site_dir(site) / "etc" / f"{files.HOST_KEY}.pub"
        key.parent.mkdir(parents=True)
        key.write_text(f"ssh-ed25519 AAAAkey{k} root@{site.name}\n")
    files.write_client(lab)
    assert lab.known_hosts.read_text() == (
        "10.200.3.2 ssh-ed25519 AAAAkey0\n10.200.7.2 ssh-ed25519 AAAAkey1\n"
    )
    config = lab.ssh_config.read_text()
    assert config.startswith("Host site-a\n  HostName 10.200.3.2\n  User pwlab\n")
    assert config.count("StrictHostKeyChecking yes") == 2
    assert f"UserKnownHostsFile {lab.known_hosts}\n" in config
    inventory = yaml.safe_load(lab.inventory.read_text())["all"]
    assert inventory["vars"]["ansible_ssh_private_key_file"] == str(lab.key)
    hosts = inventory["children"]["lab"]["hosts"]
    assert list(hosts) == ["site-a", "site-b"]
    assert hosts["site-b"]["pwrun_private_address"] == "10.201.7.1"
    assert hosts["site-b"]["pwrun_partitions"] == ["compute", "gpu"]


def test_hidden_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, cwd, lab_dir = tmp_path / "home", tmp_path / "cwd", tmp_path / "lab"
    for path in (home, cwd, lab_dir):
        path.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    source = Path(pwrun.__file__).resolve().parents[1]
    assert processes.source_tree() == source
    assert set(processes.hidden_paths(lab_dir)) == {home, Path("/root"), cwd, lab_dir, source}
    monkeypatch.chdir("/")
    assert Path("/") not in processes.hidden_paths(lab_dir)


def test_lab_record_round_trip(lab: LabRecord) -> None:
    lab.sites[1].computes[1].pid = 1234
    lab.save()
    loaded = Lab.load(lab.directory)
    assert isinstance(loaded, Lab)
    assert loaded == Lab(lab.directory, lab.sites)
    (lab.directory / "lab.json").write_text('{"directory": "/x"}')
    with pytest.raises(LabError, match="unreadable lab record"):
        Lab.load(lab.directory)


def test_up_refuses_before_making_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LabError, match="needs root"):
        Lab.up(directory=tmp_path / "lab")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    for sites, compute_nodes in ((0, 1), (27, 1), (1, 0), (1, 9)):
        with pytest.raises(LabError, match="1 to 26 sites of 1 to 8 compute nodes"):
            Lab.up(sites=sites, compute_nodes=compute_nodes, directory=tmp_path / "lab")
    assert not (tmp_path / "lab").exists()


def test_run_and_init_log(tmp_path: Path) -> None:
    assert processes.run("printf", "out") == "out"
    with pytest.raises(LabError, match="exit 1: no"):
        processes.run("sh", "-c", "echo no >&2; exit 1")
    log = tmp_path / "site-a-c1" / "init.log"
    log.parent.mkdir()
    for text, ready in (("", False), ("ready\n", True)):
        log.write_text(text)
        assert processes.init_ready(log.parent) is ready
    log.write_text("Traceback (most recent call last):\n")
    with pytest.raises(LabError, match="site-a-c1 failed to start"):
        processes.init_ready(log.parent)


def test_kill_and_find_processes() -> None:
    child = subprocess.Popen(["sleep", "60"])
    other = subprocess.Popen(["sleep", "60"])
    try:
        init = ProcessRef.of(child.pid)
        stale = ProcessRef(other.pid, ProcessRef.of(other.pid).started - 1)  # its pid, reused
        processes.kill_namespace_inits([ProcessRef(0, 0), init, stale])  # 0: never started
        assert not running(child.pid)  # a zombie until reaped
        assert child.wait(5) == -9
        assert other.poll() is None, "a recorded pid now naming another process was killed"
        processes.kill_namespace_inits([init])  # already gone
    finally:
        other.kill()
        other.wait()
    assert processes.in_netns(set()) == []
    assert processes.in_netns({"pwrun-no-such-namespace"}) == []
