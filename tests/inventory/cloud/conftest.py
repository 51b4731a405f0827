"""Fixtures of the cloud source tests: moto's EC2 server, the GCP Compute and Azure ARM emulators,
each seeded with controllers spread over several pages plus instances that must be ignored."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pwrun.errors import SourceError
from tests.emulators.aws_ec2 import Ec2Emulator
from tests.emulators.azure_arm import AzureArmEmulator
from tests.emulators.cloud_http import JsonServer
from tests.emulators.gcp_compute import GcpComputeEmulator

TENANT = "72f988bf-0000-4000-8000-2d7cd011db47"
CLIENT_ID = "0c0a1b2c-0000-4000-8000-000000000001"
AZURE_SECRET = "azSecretValue~0123456789abcdefXYZ"
SUBSCRIPTIONS = ("00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002")


@dataclass
class Seeded:
    """An emulator and what it holds: controller -> (where it is, its raw record)."""

    emulator: Any
    controllers: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    noise: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)  # controllers in unlisted places
    key_file: Path | None = None  # GCP: a service-account key the emulator trusts


def source_error(call: Callable[[], object], *secrets: str) -> SourceError:
    """The SourceError `call` raises: one line, no chained traceback, none of `secrets`."""
    with pytest.raises(SourceError) as info:
        call()
    error = info.value
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    assert "\n" not in str(error)
    for secret in secrets:
        assert secret not in str(error)
    return error


@pytest.fixture
def slow_server() -> Iterator[JsonServer]:
    """A server that takes 3 s to answer anything."""
    server = JsonServer(delay=3.0)
    server.route("GET", r"/.*", lambda request, match: (200, {}, {}))
    server.route("POST", r"/.*", lambda request, match: (200, {}, {}))
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _isolated(no_ambient_credentials: None) -> None:
    """Every test here uses only the credentials it is given."""


@pytest.fixture(scope="session")
def ec2() -> Iterator[Seeded]:
    """us-east-1: 23 controllers in reservations of 2 (pages of 5 reservations), one stopped,
    one with pwrun-* tags; 12 untagged instances; eu-west-1: 3 controllers (not listed)."""
    with Ec2Emulator() as emu:
        seeded = Seeded(emu)
        special = {
            "Name": "aws-hpc",
            "pwrun-user": "rocky",
            "pwrun-scheduler": "pbs",
            "pwrun-partitions": "debug, gpu",
            "pwrun-work-dir": "/shared/pwrun",
        }
        made = emu.add_instances("us-east-1", 1, tags=special)
        made += emu.add_instances("us-east-1", 22, per_reservation=2)
        emu.client("ec2", "us-east-1").stop_instances(InstanceIds=[made[-1]["InstanceId"]])
        for instance in made:
            name = "aws-hpc" if instance is made[0] else instance["InstanceId"]
            seeded.controllers[name] = ("us-east-1", instance)
        seeded.noise = [
            i["InstanceId"]
            for i in emu.add_instances("us-east-1", 12, controller=False, per_reservation=3)
        ]
        seeded.elsewhere = [i["InstanceId"] for i in emu.add_instances("eu-west-1", 3)]
        yield seeded


@pytest.fixture
def aws_env(ec2: Seeded, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The emulator's key in the environment (boto3's default chain)."""
    env = ec2.emulator.environment()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture(scope="session")
def gcp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """proj-a/us-central1-a: 1,203 controllers (3 pages of 500) + 40 unlabelled; proj-a/
    us-east1-b: 4 controllers, one TERMINATED; proj-b/us-central1-a: 2; proj-a/europe-west4-a: 5
    (not listed)."""
    with GcpComputeEmulator() as emu:
        seeded = Seeded(emu)
        special = {"pwrun-partitions": "debug,gpu", "pwrun-work-dir": "/shared/pwrun"}
        groups = [
            emu.add_instances(
                "proj-a",
                "us-central1-a",
                1,
                labels={"pwrun-user": "rocky"},
                metadata=special,
                prefix="gcp-hpc",
            ),
            emu.add_instances("proj-a", "us-central1-a", 1202),
            emu.add_instances("proj-a", "us-east1-b", 3),
            emu.add_instances("proj-a", "us-east1-b", 1, status="TERMINATED", prefix="gcp-off"),
            emu.add_instances("proj-b", "us-central1-a", 2, public=False),
        ]
        emu.add_zone("proj-b", "us-east1-b")  # fmt: skip
        for instances in groups:
            for instance in instances:
                project, zone = instance["zone"].split("/projects/")[1].split("/zones/")
                seeded.controllers[instance["name"]] = (f"{project}/{zone}", instance)
        seeded.noise = [
            i["name"] for i in emu.add_instances("proj-a", "us-central1-a", 40, controller=False)
        ]
        seeded.elsewhere = [i["name"] for i in emu.add_instances("proj-a", "europe-west4-a", 5)]
        seeded.key_file = emu.service_account_file(tmp_path_factory.mktemp("gcp-key"))
        yield seeded


@pytest.fixture(scope="session")
def azure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """Pages of 4. Subscription 1: hpc-rg 9 controllers (one deallocated, one with pwrun-* tags)
    + 6 untagged; other-rg 2 controllers without public IP. Subscription 2: 3 controllers;
    subscription 3 (not listed): 2."""
    with AzureArmEmulator(tmp_path_factory.mktemp("azure-tls"), page_size=4) as emu:
        emu.register_app(TENANT, CLIENT_ID, AZURE_SECRET)
        seeded = Seeded(emu)
        sub1, sub2 = SUBSCRIPTIONS
        special = {
            "pwrun-user": "rocky",
            "pwrun-scheduler": "slurm",
            "pwrun-partitions": "debug gpu",
            "pwrun-work-dir": "/shared/pwrun",
        }
        groups = [
            ("hpc-rg", emu.add_vms(sub1, "hpc-rg", "eastus", 1, tags=special, prefix="az-hpc")),
            ("hpc-rg", emu.add_vms(sub1, "hpc-rg", "eastus", 7)),
            ("hpc-rg", emu.add_vms(sub1, "hpc-rg", "eastus", 1, power="deallocated")),
            ("other-rg", emu.add_vms(sub1, "other-rg", "westeurope", 2, public=False)),
            ("sub2", emu.add_vms(sub2, "rg2", "southcentralus", 3, admin="hpcadmin")),
        ]
        for where, vms in groups:
            for vm in vms:
                seeded.controllers[vm["name"]] = (where, vm)
        seeded.noise = [vm["name"] for vm in emu.add_vms(sub1, "hpc-rg", "eastus", 6,
                                                         controller=False)]  # fmt: skip
        seeded.elsewhere = [
            vm["name"] for vm in emu.add_vms("00000000-0000-4000-8000-000000000003", "rg3",
                                             "eastus", 2)
        ]  # fmt: skip
        yield seeded


@pytest.fixture
def azure_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PWRUN_TEST_AZURE_SECRET", AZURE_SECRET)


def azure_options(emu: AzureArmEmulator, **extra: Any) -> dict[str, Any]:
    """Options of a client-secret source pointed at `emu` (secret in PWRUN_TEST_AZURE_SECRET)."""
    return {
        "subscriptions": list(SUBSCRIPTIONS),
        "auth": "client_secret",
        "tenant_id": TENANT,
        "client_id": CLIENT_ID,
        "client_secret_env": "PWRUN_TEST_AZURE_SECRET",
        "authority_host": emu.url,
        "ca_bundle": str(emu.ca_file),
        "endpoint_url": emu.url,
        "timeout": 5,
        "retries": 0,
    } | extra
