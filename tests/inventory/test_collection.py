"""The pwrun.hpc collection: built from this checkout with `ansible-galaxy collection build`,
installed into a temporary collections path, and used by FQCN from a directory outside the
checkout (its inventory plugin through ansible-inventory, a role from a playbook there)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.emulators.pw_api import PwApiEmulator
from tests.inventory.conftest import REPO, inventory_json

BIN = Path(sys.executable).parent
PLAY = """
- name: Pin the clusters' host keys with the collection's role
  hosts: all
  gather_facts: false
  roles:
    - role: pwrun.hpc.ssh_access
      vars:
        ssh_access_known_hosts_file: "{out}/known_hosts"
        ssh_access_config_file: "{out}/config"
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The collection built from the checkout and installed into a temporary collections path."""
    tmp = tmp_path_factory.mktemp("collection")
    env = dict(os.environ)
    build = ansible("ansible-galaxy", "collection", "build", str(REPO), "--output-path", str(tmp),
                    cwd=tmp, env=env)  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    artifact = tmp / f"pwrun-hpc-{version}.tar.gz"  # the collection's version is pwrun's
    assert artifact.is_file(), list(tmp.iterdir())
    install = ansible("ansible-galaxy", "collection", "install", str(artifact),
                      "-p", str(tmp / "cp"), cwd=tmp, env=env)  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    return tmp / "cp"


def ansible(tool: str, *args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """An ansible command of this Python's install, run in `cwd`."""
    return subprocess.run([BIN / tool, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)  # fmt: skip


def elsewhere(tmp_path: Path, env: dict, collections: Path) -> dict:
    """An environment that sees the collection and nothing of the checkout: no ansible.cfg, role
    path or plugin path of it (the command runs in `tmp_path`)."""
    env = {k: v for k, v in env.items() if not k.startswith("ANSIBLE_")}
    return {**env, "ANSIBLE_COLLECTIONS_PATH": str(collections),
            "ANSIBLE_ROLES_PATH": str(tmp_path / "no-roles"),
            "ANSIBLE_HOME": str(tmp_path / "ansible-home")}  # fmt: skip


def test_the_plugin_by_fqcn_lists_the_clusters(
    installed: Path, pw_api: PwApiEmulator, pw_env: dict, tmp_path: Path
) -> None:
    source = tmp_path / "clusters.pwrun.yml"
    source.write_text("plugin: pwrun.hpc.pwrun\nsources:\n  pw:\nkeyed_groups:\n"
                      "  - key: pwrun_cloud\n    prefix: cloud\n")  # fmt: skip
    env = elsewhere(tmp_path, pw_env, installed)
    inventory = inventory_json(ansible("ansible-inventory", "-i", str(source), "--list",
                                       cwd=tmp_path, env=env))  # fmt: skip
    hostvars = inventory["_meta"]["hostvars"]
    assert set(hostvars) == {"gcpslurmv2", "awsoff", "onprem", "bare"}
    assert hostvars["gcpslurmv2"]["ansible_host"] == "34.171.136.114"
    assert inventory["cloud_gcp"]["hosts"] == ["gcpslurmv2"]
    assert set(inventory["status_on"]["hosts"]) == {"gcpslurmv2", "onprem", "bare"}

    # without the collection, the same file is no inventory at all: the collection did it
    env["ANSIBLE_COLLECTIONS_PATH"] = str(tmp_path / "empty")
    bare = ansible("ansible-inventory", "-i", str(source), "--list", cwd=tmp_path, env=env)
    assert "gcpslurmv2" not in bare.stdout


def test_a_role_by_fqcn_runs_from_a_playbook_outside_the_checkout(
    installed: Path, tmp_path: Path
) -> None:
    """ssh_access (its filters come from the collection) pins a host key from a known_hosts."""
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAcehK2tu3ZpPyKwGk7znKMbrJDs+0fEsiuLartitQ7K"
    (tmp_path / "pinned").write_text(f"10.9.9.9 {key}\n")
    out = tmp_path / "out"
    hosts = {"cluster1": {
        "ansible_connection": "local", "ansible_host": "10.9.9.9", "ansible_user": "alice",
        "ansible_python_interpreter": sys.executable,
        "ssh_access_pinned_known_hosts": str(tmp_path / "pinned"),
    }}  # fmt: skip
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    (tmp_path / "play.yml").write_text(PLAY.format(out=out))
    env = elsewhere(tmp_path, dict(os.environ), installed)
    played = ansible("ansible-playbook", "-i", "hosts.yml", "play.yml", cwd=tmp_path, env=env)
    assert played.returncode == 0, played.stdout[-3000:] + played.stderr[-3000:]
    assert f"10.9.9.9 {key}" in (out / "known_hosts").read_text().splitlines()
    config = (out / "config").read_text()
    assert "Host cluster1\n  HostName 10.9.9.9\n  User alice\n" in config
    assert "StrictHostKeyChecking yes" in config
    assert json.dumps(sorted(p.name for p in out.iterdir())) == '["config", "known_hosts"]'


def test_every_role_plugin_is_in_the_collection_and_roles_name_filters_by_fqcn() -> None:
    """Collection roles cannot bring plugins: each role's filter and module file is linked under
    plugins/, and the roles call pwrun's filters as pwrun.hpc.NAME (a short name would work in
    the checkout only)."""
    for kind, plugins in (("filter_plugins", "filter"), ("library", "modules")):
        for path in REPO.glob(f"roles/*/{kind}/*.py"):
            link = REPO / "plugins" / plugins / path.name
            assert link.resolve() == path.resolve(), f"{path} is not linked as {link}"
    names = set()
    for path in REPO.glob("roles/*/filter_plugins/*.py"):
        names |= set(re.findall(r'"(pwrun_[a-z_]+)":', path.read_text()))
    assert "pwrun_pinned_keys" in names
    short = re.compile(r"(?<![.\w])(" + "|".join(sorted(names)) + r")\b")
    for path in [*REPO.glob("roles/**/*.yml"), *REPO.glob("roles/**/*.j2")]:
        assert not short.search(path.read_text()), f"{path}: a pwrun filter without pwrun.hpc."
