"""The provisioning fast path: a site whose recorded state still holds skips ansible-runner.

The ssh seam (SSHTarget.run) and the ansible-runner seam (ready.provision) are mocked: a fake
site answers the probe from a dict that a test can change, as an admin changing a site would.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from pwrun.errors import InfrastructureError
from pwrun.provision import ready
from pwrun.transport.ssh import SSHTarget

FACTS = {"pwrun_env_path": "/home/u/.pwrun/envs/parsl-x", "pwrun_worker_init": "source x"}


class FakeSites:
    """Answers each site's probe (by host) and records site.yml runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.answers: dict[str, str] = {}
        self.unreachable: set[str] = set()
        self.provisioned: list[list[str]] = []
        monkeypatch.setattr(
            SSHTarget, "run", lambda target, command, **kw: self.run(target, command)
        )
        monkeypatch.setattr(ready, "provision", self.provision)

    def run(self, target: SSHTarget, command: str) -> subprocess.CompletedProcess:
        if target.host in self.unreachable:
            raise InfrastructureError(f"{target.host}: command timed out")
        assert "pwrun_env_path" not in command and ".pwrun-env.json" in command
        return subprocess.CompletedProcess([], 0, self.answers.get(target.host, "home=/h\n"), "")

    def provision(self, hostvars: dict[str, Any], run_dir: Path) -> dict[str, Any]:
        self.provisioned.append(sorted(hostvars))
        return {site: dict(FACTS) for site in hostvars}


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSites:
    monkeypatch.setenv("PWRUN_HOME", str(tmp_path / "state"))
    return FakeSites(monkeypatch)


SITES = {"site-a": {"ansible_host": "10.0.0.1"}, "site-b": {"ansible_host": "10.0.0.2"}}
TARGETS = {"site-a": SSHTarget("10.0.0.1"), "site-b": SSHTarget("10.0.0.2")}


def test_a_site_whose_state_holds_is_not_provisioned_again(fake: FakeSites, tmp_path: Path):
    facts, made = ready.ready(SITES, TARGETS, tmp_path)
    assert made == ["site-a", "site-b"] and fake.provisioned == [["site-a", "site-b"]]
    assert facts == {"site-a": FACTS, "site-b": FACTS}
    facts, made = ready.ready(SITES, TARGETS, tmp_path)
    assert made == [] and len(fake.provisioned) == 1
    assert facts == {"site-a": FACTS, "site-b": FACTS}


def test_a_changed_site_converges_alone(fake: FakeSites, tmp_path: Path) -> None:
    ready.ready(SITES, TARGETS, tmp_path)
    fake.answers["10.0.0.2"] = "home=/h\ncat: .pwrun-env.json: No such file\n"  # env removed
    _, made = ready.ready(SITES, TARGETS, tmp_path)
    assert made == ["site-b"] and fake.provisioned[-1] == ["site-b"]


def test_changed_inventory_variables_mean_provisioning(fake: FakeSites, tmp_path: Path) -> None:
    ready.ready(SITES, TARGETS, tmp_path)
    changed = {**SITES, "site-a": {**SITES["site-a"], "python_env_packages": ["numpy"]}}
    _, made = ready.ready(changed, TARGETS, tmp_path)
    assert made == ["site-a"]


def test_an_unreachable_site_goes_to_ansible_which_names_it(fake: FakeSites, tmp_path: Path):
    ready.ready(SITES, TARGETS, tmp_path)
    fake.unreachable.add("10.0.0.1")
    _, made = ready.ready(SITES, TARGETS, tmp_path)
    assert made == ["site-a"]


def test_force_provisions_every_site_and_records_them(fake: FakeSites, tmp_path: Path) -> None:
    ready.ready(SITES, TARGETS, tmp_path)
    _, made = ready.ready(SITES, TARGETS, tmp_path, force=True)
    assert made == ["site-a", "site-b"]
    assert ready.recorded("site-a") is not None


def test_an_unreadable_record_means_provisioning(fake: FakeSites, tmp_path: Path) -> None:
    ready.ready(SITES, TARGETS, tmp_path)
    ready.record_path("site-a").write_text('{"fingerprint": "x", "old_field": 1}')
    _, made = ready.ready(SITES, TARGETS, tmp_path)
    assert made == ["site-a"]


def test_fingerprint_covers_variables_and_content(monkeypatch: pytest.MonkeyPatch) -> None:
    base = ready.fingerprint(SITES["site-a"])
    assert base == ready.fingerprint(dict(SITES["site-a"]))
    assert base != ready.fingerprint({"ansible_host": "10.0.0.9"})
    ready.content_digest.cache_clear()
    monkeypatch.setattr(ready, "CONTENT_PARTS", ("site.yml",))  # as if the roles had changed
    try:
        assert base != ready.fingerprint(SITES["site-a"])
    finally:
        ready.content_digest.cache_clear()


def test_probe_quotes_the_env_path() -> None:
    probe = ready.probe_command({"pwrun_env_path": "/x/$(touch y)"})
    assert "cat -- '/x/$(touch y)'/.pwrun-env.json" in probe
    assert "sinfo -h -o '%P|%c|%D|%a'" in probe


def test_node_states_are_no_change_but_a_new_partition_is(fake: FakeSites, tmp_path: Path):
    idle = "home=/h\nmarker={}\npython=ok\nscheduler:\n== slurm\ncompute*|2|2|up\ngpu|2|1|up\n"
    completing = idle.replace("compute*|2|2|up", "compute*|2|1|up\ncompute*|2|1|up")
    fake.answers["10.0.0.1"] = idle
    ready.ready(SITES, TARGETS, tmp_path)
    fake.answers["10.0.0.1"] = completing  # a node of the last run's job still completing
    assert ready.ready(SITES, TARGETS, tmp_path)[1] == []
    fake.answers["10.0.0.1"] = idle + "debug|2|1|up\n"
    assert ready.ready(SITES, TARGETS, tmp_path)[1] == ["site-a"]
