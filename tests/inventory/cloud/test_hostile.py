"""Hostile API values reach no template: each source serves a Jinja payload in every field it
reads, then the real `ansible-inventory` and `ansible-playbook` run the plugin over them.

A checked field (name, user, address, work dir, scheduler) makes its record skipped with a
warning naming the source and the field; a free-form one (tags, labels, namespace, places,
partitions) is kept and shown literally, through `compose`, `groups` and `keyed_groups` too.
The payload would create a file: it never appears.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pwrun.provision.inventory import unwrap
from tests.emulators.pw_api import PwApiEmulator, pw_cluster, v3_view
from tests.inventory.cloud.conftest import AZURE_SECRET, Seeded, azure_options
from tests.inventory.conftest import PW_KEY, REPO

AWS_REGION = "ap-northeast-2"
GCP_PROJECT, GCP_ZONE = "proj-hostile", "us-central1-a"
AZURE_SUBSCRIPTION = "00000000-0000-4000-8000-000000000009"
PLAYBOOK = """\
- hosts: all
  gather_facts: false
  connection: local
  tasks:
    - debug: var=hostvars[inventory_hostname]
    - debug: msg="{{ pwrun_tags }} {{ pwrun_namespace }} {{ shouted }}"
"""
CONSTRUCTED = {
    "compose": {
        "copied_tags": "pwrun_tags",
        "shouted": "(pwrun_tags.team | default(pwrun_namespace) | default('')) ~ '!'",
    },
    "groups": {"payload_seen": "'lookup' in (pwrun_tags | string)"},
    "keyed_groups": [{"key": "pwrun_tags", "prefix": "tag"}],
}

# Records whose checked field holds the payload: (source, start of the name, field named)
SKIPPED = [
    ("pw", None, "field 'name'"),
    ("pw", "pw-settings-user", "field 'settings.slurmUsername'"),
    ("pw", "pw-variables-user", "field 'variables.slurmUsername'"),
    ("pw", "pw-controller", "field 'controllerIp'"),
    ("pw", "pw-master", "field 'state.masterNode'"),
    ("pw", "pw-workdir", "field 'variables.workdir'"),
    ("pw", "pw-login", "field 'variables.slurmLoginNode'"),
    ("aws", None, "tag 'Name'"),
    ("aws", "aws-user", "tag 'pwrun-user'"),
    ("aws", "aws-workdir", "tag 'pwrun-work-dir'"),
    ("aws", "aws-scheduler", "tag 'pwrun-scheduler'"),
    ("gcp", None, "field 'name'"),
    ("gcp", "gcp-user-", "metadata item or label 'pwrun-user'"),
    ("gcp", "gcp-workdir-", "metadata item or label 'pwrun-work-dir'"),
    ("azure", "az-user-", "tag 'pwrun-user'"),
    ("azure", "az-workdir-", "tag 'pwrun-work-dir'"),
    ("azure", "az-admin-", "field 'properties.osProfile.adminUsername'"),
]
Kept = dict[str, dict[str, Any]]  # host kept with the payload -> {hostvar: expected value}


@dataclass
class Outcome:
    payload: str
    marker: Path
    hostvars: dict[str, dict[str, Any]]
    groups: dict[str, Any]
    inventory_stderr: str
    playbook: subprocess.CompletedProcess
    kept: Kept

    def warnings(self, start: str) -> list[str]:
        return [
            line.removeprefix("[WARNING]: ")
            for line in self.inventory_stderr.splitlines()
            if line.startswith(f"[WARNING]: {start}")
        ]


def seed_pw(api: PwApiEmulator, bad: str) -> Kept:
    def record(name: str, **fields: Any) -> dict[str, Any]:
        view = v3_view(pw_cluster(name, namespace="alice"))
        for dotted, value in fields.items():
            *parents, last = dotted.split("__")
            target = view
            for parent in parents:
                target = target.setdefault(parent, {})
            target[last] = value
        return view

    api.v3_items = [
        record(bad),
        record("pw-settings-user", settings__slurmUsername=bad),
        record("pw-variables-user", variables__slurmUsername=bad),
        record("pw-controller", controllerIp=bad),
        record("pw-master", controllerIp=None, state__masterNode=f"{bad}@192.0.2.7"),
        record("pw-workdir", variables__workdir=bad),
        record("pw-login", controllerIp=None, variables__slurmLoginNode=bad),
        record("pw-private", variables__privateIp=bad),
        record(
            "pw-free",
            namespace=bad,
            tags=[bad],
            variables__region=bad,
            variables__zone=bad,
            variables__partition_config=[{"name": bad}],
        ),
    ]
    return {
        "pw-private": {"pwrun_private_address": None, "pwrun_namespace": "alice"},
        "pw-free": {
            "pwrun_namespace": bad,
            "pwrun_tags": {bad: ""},
            "pwrun_region": bad,
            "pwrun_zone": bad,
            "pwrun_partitions": [bad],
            "copied_tags": {bad: ""},
            "shouted": f"{bad}!",  # from the namespace
        },
    }


def seed_clouds(ec2: Seeded, gcp: Seeded, azure: Seeded, bad: str) -> Kept:
    for tags in (
        {"Name": bad},
        {"Name": "aws-user", "pwrun-user": bad},
        {"Name": "aws-workdir", "pwrun-work-dir": bad},
        {"Name": "aws-scheduler", "pwrun-scheduler": bad},
        {"Name": "aws-free", "team": bad, "pwrun-partitions": bad},
    ):
        ec2.emulator.add_instances(AWS_REGION, 1, tags=tags)
    kept: Kept = {
        "aws-free": {
            "pwrun_partitions": [part for part in re.split(r"[,\s]+", bad) if part],
            "shouted": f"{bad}!",
        }
    }

    gcp_add = gcp.emulator.add_instances
    gcp_add(GCP_PROJECT, GCP_ZONE, 1, prefix=bad)
    gcp_add(GCP_PROJECT, GCP_ZONE, 1, prefix="gcp-user", metadata={"pwrun-user": bad})
    gcp_add(GCP_PROJECT, GCP_ZONE, 1, prefix="gcp-workdir", metadata={"pwrun-work-dir": bad})
    [free] = gcp_add(GCP_PROJECT, GCP_ZONE, 1, prefix="gcp-free", labels={"team": bad})
    kept[free["name"]] = {"shouted": f"{bad}!"}

    add_vms = azure.emulator.add_vms
    add_vms(AZURE_SUBSCRIPTION, "rg", "eastus", 1, prefix="az-user", tags={"pwrun-user": bad})
    add_vms(AZURE_SUBSCRIPTION, "rg", "eastus", 1, prefix="az-workdir",
            tags={"pwrun-work-dir": bad})  # fmt: skip
    add_vms(AZURE_SUBSCRIPTION, "rg", "eastus", 1, prefix="az-admin", admin=bad)
    [vm] = add_vms(AZURE_SUBSCRIPTION, "rg", "eastus", 1, prefix="az-free", tags={"team": bad})
    kept[vm["name"]] = {"shouted": f"{bad}!"}
    return kept


@pytest.fixture(scope="module")
def outcome(
    ec2: Seeded, gcp: Seeded, azure: Seeded, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Outcome]:
    """One inventory file over all four sources, run once through each command."""
    workdir = tmp_path_factory.mktemp("hostile")
    marker = workdir / "pwned"
    bad = f"x{{{{ lookup('pipe', 'touch {marker}') }}}}"
    with PwApiEmulator(api_key=PW_KEY) as api:
        kept = seed_pw(api, bad) | seed_clouds(ec2, gcp, azure, bad)
        sources = {
            "pw": {"retries": 0},
            "aws": {"regions": [AWS_REGION], "endpoint_url": ec2.emulator.url},
            "gcp": {
                "projects": [GCP_PROJECT],
                "zones": [GCP_ZONE],
                "endpoint_url": gcp.emulator.url,
                "credentials_file": str(gcp.key_file),
            },
            "azure": azure_options(azure.emulator, subscriptions=[AZURE_SUBSCRIPTION]),
        }
        path = workdir / "hostile.pwrun.yml"
        path.write_text(yaml.safe_dump({"plugin": "pwrun", "sources": sources, **CONSTRUCTED}))
        (workdir / "play.yml").write_text(PLAYBOOK)
        env = {
            **os.environ,
            **ec2.emulator.environment(),
            "AWS_CONFIG_FILE": str(workdir / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "none"),
            "PW_PLATFORM_HOST": api.url,
            "PW_API_KEY": PW_KEY,
            "PWRUN_TEST_AZURE_SECRET": AZURE_SECRET,
            "HOME": str(workdir),
        }
        bindir = Path(sys.executable).parent

        def command(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [str(bindir / args[0]), "-i", str(path), *args[1:]],
                cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip

        listed = command("ansible-inventory", "--list")
        played = command("ansible-playbook", str(workdir / "play.yml"))
    assert listed.returncode == 0, listed.stderr
    inventory = unwrap(json.loads(listed.stdout))
    hostvars = inventory.pop("_meta")["hostvars"]
    yield Outcome(bad, marker, hostvars, inventory, listed.stderr, played, kept)


def test_nothing_ran(outcome: Outcome) -> None:
    played = outcome.playbook.stdout
    assert outcome.playbook.returncode == 0, played + outcome.playbook.stderr
    assert not outcome.marker.exists()
    assert "Traceback" not in outcome.inventory_stderr + outcome.playbook.stderr
    assert set(outcome.hostvars) == set(outcome.kept)
    assert all(f"ok: [{host}]" in played for host in outcome.kept)
    assert outcome.payload in played  # shown as text by both debug tasks


@pytest.mark.parametrize(
    ("kind", "name", "field"), SKIPPED, ids=[f"{k}-{f}" for k, _, f in SKIPPED]
)
def test_checked_field_skips_the_record(outcome: Outcome, kind: str, name: str | None,
                                        field: str) -> None:  # fmt: skip
    named = [w for w in outcome.warnings(f"inventory source '{kind}': ") if f"{field}: " in w]
    assert len(named) == 1, outcome.inventory_stderr
    assert named[0].endswith("; record skipped")
    if name:
        assert not [host for host in outcome.hostvars if host.startswith(name)]
        assert kind == "aws" or name in named[0]  # AWS names the instance by its id


def test_interface_name_check_is_a_note(outcome: Outcome) -> None:
    [note] = outcome.warnings("inventory note (pw): ")
    assert "cluster #7 ('pw-private'): variables.privateIp " in note
    assert "x{{ lookup(" in note
    assert note.endswith("is not an IP address, left out: Parsl workers will be given the "
                         "cluster's public address")  # fmt: skip


@pytest.mark.parametrize("start", ["pw-private", "pw-free", "aws-free", "gcp-free", "az-free"])
def test_free_form_values_are_kept_literally(outcome: Outcome, start: str) -> None:
    [host] = [h for h in outcome.kept if h.startswith(start)]
    for key, value in outcome.kept[host].items():
        assert outcome.hostvars[host].get(key) == value, key


def test_constructed_groups_see_the_payload_as_text(outcome: Outcome) -> None:
    tagged = {h for h, v in outcome.hostvars.items() if outcome.payload in str(v["pwrun_tags"])}
    assert len(tagged) == 4
    assert set(outcome.groups["payload_seen"]["hosts"]) == tagged
    keyed = [group for group in outcome.groups if group.startswith("tag_team_x")]
    assert len(keyed) == 1 and all(char not in keyed[0] for char in "{}' ()")
