"""The Ansible plugin, through `ansible-inventory` run for real from the repository."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests
import yaml

from pwrun.inventory import SOURCE_PROBLEM, source_prefix
from tests.emulators.pw_api import PwApiEmulator
from tests.inventory.conftest import PW_KEY, REPO, inventory_json

BASIC = "plugin: pwrun\nsources:\n  pw:\n"
UNPARSED_FAILED = "ANSIBLE_INVENTORY_UNPARSED_FAILED"


def test_list_hosts_facts_and_groups(
    pw_api: PwApiEmulator, ansible_inventory, write_inventory
) -> None:
    path = write_inventory(
        BASIC + "compose:\n  parsl_address: pwrun_private_address | default(ansible_host, true)\n"
        "groups:\n  reachable: pwrun_status == 'on' and ansible_host is defined\n"
        "keyed_groups:\n  - key: pwrun_cloud\n    prefix: cloud\n"
    )
    inventory = inventory_json(ansible_inventory(path, "--list"))
    hostvars = inventory["_meta"]["hostvars"]
    assert set(hostvars) == {"gcpslurmv2", "awsoff", "onprem", "bare"}
    gcp = hostvars["gcpslurmv2"]
    assert gcp["ansible_host"] == "34.171.136.114" and gcp["ansible_user"] == "alice"
    assert gcp["pwrun_partitions"] == ["compute", "gpu"] and gcp["pwrun_namespace"] == "alice"
    assert gcp["pwrun_work_dir"] == "/home/alice/pw" and gcp["parsl_address"] == "10.128.0.2"
    assert hostvars["onprem"]["parsl_address"] == "login.hpc.example.org"
    assert "ansible_host" not in hostvars["bare"]

    def members(group: str) -> set[str]:
        return set(inventory.get(group, {}).get("hosts", []))

    assert members("source_pw") == {"gcpslurmv2", "awsoff", "onprem", "bare"}
    assert members("status_off") == {"awsoff"}
    assert members("scheduler_pbs") == {"onprem"}
    assert members("cloud_gcp") == {"gcpslurmv2"} and members("cloud_onprem") == {"onprem"}
    assert members("reachable") == {"gcpslurmv2", "onprem"}


def test_graph(pw_api: PwApiEmulator, ansible_inventory, write_inventory) -> None:
    result = ansible_inventory(write_inventory(BASIC), "--graph")
    assert result.returncode == 0, result.stderr
    assert "|--@status_on:" in result.stdout and "|  |--gcpslurmv2" in result.stdout


def test_raw_results_cached_until_flushed(
    pw_api: PwApiEmulator, ansible_inventory, write_inventory, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "cache"
    path = write_inventory(
        BASIC
        + f"cache: true\ncache_plugin: ansible.builtin.jsonfile\ncache_connection: {cache_dir}\n"
    )
    first = inventory_json(ansible_inventory(path, "--list"))
    hits = pw_api.hits.total()
    assert hits == 3  # today's list (404 here), v3 clusters, session
    cached_text = "".join(p.read_text() for p in cache_dir.iterdir())
    assert "gcpslurmv2" in cached_text and PW_KEY not in cached_text
    assert "currentSessionStatus" in cached_text  # the raw API answer, not the built inventory

    pw_api.status = 500  # a cached run must not ask the API at all
    assert inventory_json(ansible_inventory(path, "--list")) == first
    assert pw_api.hits.total() == hits

    pw_api.status = None
    pw_api.clusters.pop(0)
    flushed = inventory_json(ansible_inventory(path, "--list", "--flush-cache"))
    assert "gcpslurmv2" not in flushed["_meta"]["hostvars"]
    assert pw_api.hits.total() == hits + 3


def test_other_files_are_left_to_other_plugins(pw_api, ansible_inventory, write_inventory) -> None:
    result = ansible_inventory(write_inventory(BASIC, name="clusters.yml"), "--list")
    assert pw_api.hits.total() == 0
    assert "gcpslurmv2" not in result.stdout
    plain = write_inventory("all:\n  hosts:\n    h1:\n      foo: bar\n", name="plain.yml")
    assert inventory_json(ansible_inventory(plain, "--list"))["_meta"]["hostvars"]["h1"] == {
        "foo": "bar"
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BASIC + "compse: {}\n", "compse: unknown option"),
        ("plugin: pwrun\nsources:\n  pw: {tiemout: 3}\n", "sources.pw.tiemout: unknown option"),
        ("plugin: pwrun\nsources:\n  openstack:\n", "sources.openstack: unknown source"),
    ],
)
def test_bad_option_is_named(pw_api, ansible_inventory, write_inventory, text, expected) -> None:
    path = write_inventory(text)
    result = ansible_inventory(path, "--list", ANSIBLE_INVENTORY_UNPARSED_FAILED="true")
    assert result.returncode != 0
    assert expected in result.stderr and str(path) in result.stderr
    assert "Traceback" not in result.stderr
    assert pw_api.hits.total() == 0


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (
            "500",
            "inventory source 'pw': GET {url}/api/clusters: HTTP 500 Internal Server Error "
            "(gave up after 1 attempts)",
        ),
        ("no key", "inventory source 'pw': no API key: set PW_API_KEY or write the key to"),
    ],
)
def test_failing_source_warns_strict_sources_fails(
    pw_api, ansible_inventory, write_inventory, fault: str, expected: str
) -> None:
    env = {UNPARSED_FAILED: "true"}
    if fault == "500":
        pw_api.status = 500
    else:
        env["PW_API_KEY"] = ""
    expected = expected.format(url=pw_api.url)
    text = "plugin: pwrun\n{}sources:\n  pw:\n    retries: 0\n"

    # `strict` is Ansible's constructed option only: the source's failure is a warning
    lenient = ansible_inventory(write_inventory(text.format("strict: true\n")), "--list", **env)
    assert lenient.returncode == 0, lenient.stderr
    assert f"[WARNING]: {expected}" in lenient.stderr
    [found] = filter(None, map(SOURCE_PROBLEM.search, lenient.stderr.splitlines()))
    assert found["source"] == "pw" and found[0].startswith(source_prefix("pw"))
    assert json.loads(lenient.stdout)["_meta"]["hostvars"] == {}

    # strict_sources: the plugin fails with the source's message; Ansible then tries its other
    # plugins and, by default, goes on with an empty inventory
    strict = write_inventory(text.format("strict_sources: true\n"), name="strict.pwrun.yml")
    asked = sum(pw_api.hits.values())
    failed = ansible_inventory(strict, "--list", **env)
    assert failed.returncode != 0
    if fault == "500":  # `auto` retries the file with this plugin: the API is asked once
        assert sum(pw_api.hits.values()) - asked == 1
    assert f"[WARNING]: Failed to parse inventory with 'pwrun' plugin: {expected}" in failed.stderr
    assert f"Unable to parse {strict} as an inventory source" in failed.stderr
    assert "[ERROR]: No inventory was parsed" in failed.stderr
    assert "Traceback" not in failed.stderr
    unparsed_ok = ansible_inventory(strict, "--list", **{**env, UNPARSED_FAILED: "false"})
    assert unparsed_ok.returncode == 0
    assert f"Failed to parse inventory with 'pwrun' plugin: {expected}" in unparsed_ok.stderr


def test_every_option_is_documented() -> None:
    """ansible-doc sees every field of the file model and of each source's Options."""
    from pwrun.inventory.config import _FileModel
    from pwrun.inventory.sources import SOURCE_KINDS, source_kind

    doc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-doc"), "-t", "inventory", "pwrun", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    options = json.loads(doc.stdout)["pwrun"]["doc"]["options"]
    assert set(_FileModel.model_fields) <= set(options)
    assert (options["strict_sources"]["type"], options["strict_sources"]["default"]) == (
        "bool",
        False,
    )
    documented = options["sources"]["suboptions"]
    assert set(documented) == set(SOURCE_KINDS)
    for kind in SOURCE_KINDS:
        try:
            fields = source_kind(kind).options.model_fields
        except Exception as exc:  # a missing SDK: that source cannot be checked here
            pytest.fail(f"source {kind} cannot be loaded: {exc}")
        assert set(fields) == set(documented[kind]["suboptions"]), kind
    assert yaml.safe_load(json.loads(doc.stdout)["pwrun"]["examples"])["plugin"] == "pwrun"


@pytest.fixture
def moto_process(tmp_path: Path) -> Iterator[str]:
    """moto's EC2 server in its own process: moto keeps state per process, and the cloud
    tests share theirs in this one."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                requests.get(f"{url}/moto-api/", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_pw_and_ec2_together_with_a_duplicate_name(
    pw_api: PwApiEmulator, ansible_inventory, write_inventory, moto_process: str, tmp_path: Path
) -> None:
    keys = {
        "AWS_ACCESS_KEY_ID": "AKIAPWRUNTESTKEY0001",
        "AWS_SECRET_ACCESS_KEY": "awsS3cretForTests",
    }
    ec2 = boto3.client(
        "ec2",
        region_name="us-east-1",
        endpoint_url=moto_process,
        **{k.lower(): v for k, v in keys.items()},
    )

    def launch(name: str, role: str = "controller", **tags: str) -> dict:
        tag_list = [
            {"Key": k, "Value": v} for k, v in {"Name": name, "pwrun-role": role, **tags}.items()
        ]
        spec = [{"ResourceType": "instance", "Tags": tag_list}]
        return ec2.run_instances(
            ImageId="ami-12c6146b", MinCount=1, MaxCount=1, TagSpecifications=spec
        )["Instances"][0]

    launch("gcpslurmv2")  # clashes with a PW cluster
    own = launch("aws-hpc", **{"pwrun-user": "rocky"})
    launch("compute-1", role="compute")
    path = write_inventory(
        BASIC + f"  aws:\n    regions: [us-east-1]\n    endpoint_url: {moto_process}\n"
    )
    env = {
        **keys,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    result = ansible_inventory(path, "--list", **env)
    inventory = inventory_json(result)
    hostvars = inventory["_meta"]["hostvars"]
    assert set(hostvars) == {"gcpslurmv2", "awsoff", "onprem", "bare", "aws-hpc"}
    assert hostvars["gcpslurmv2"]["pwrun_source"] == "pw"
    aws = hostvars["aws-hpc"]
    assert aws["ansible_user"] == "rocky" and aws["pwrun_cloud"] == "aws"
    assert aws["pwrun_private_address"] == own["PrivateIpAddress"]
    assert inventory["source_aws"]["hosts"] == ["aws-hpc"]
    assert (
        "inventory source 'aws': cluster name 'gcpslurmv2' (field name) is already used by "
        "source 'pw'" in " ".join(result.stderr.split())
    )
    assert keys["AWS_SECRET_ACCESS_KEY"] not in result.stdout + result.stderr
