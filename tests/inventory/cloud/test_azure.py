"""The Azure source against the ARM emulator (HTTPS), with azure-identity, azure-mgmt-compute
and azure-mgmt-network unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pydantic
import pytest

from pwrun.inventory.azure import AzureSource, Options
from tests.emulators.azure_arm import AzureArmEmulator
from tests.emulators.cloud_http import closed_port_url
from tests.inventory.cloud.conftest import (
    AZURE_SECRET,
    CLIENT_ID,
    SUBSCRIPTIONS,
    TENANT,
    Seeded,
    azure_options,
    source_error,
)


def source(azure: Seeded, **options: object) -> AzureSource:
    return AzureSource(Options.model_validate(azure_options(azure.emulator, **options)))


def listed(src: AzureSource) -> dict[str, object]:
    parsed = src.parse(json.loads(json.dumps(src.fetch())))
    assert parsed.problems == [] and parsed.notes == []
    return {c.name: c for c in parsed.clusters}


def expected_addresses(azure: Seeded, vm: dict) -> tuple[str | None, str | None]:
    """(public, private) as the emulator's NIC and public IP resources hold them."""
    emu = azure.emulator
    nic_id = vm["properties"]["networkProfile"]["networkInterfaces"][0]["id"]
    sub = next(s for s in emu.subscriptions.values() if any(n["id"] == nic_id for n in s.nics))
    nic = next(n for n in sub.nics if n["id"] == nic_id)
    config = nic["properties"]["ipConfigurations"][0]["properties"]
    public_id = config.get("publicIPAddress", {}).get("id")
    public = next(
        (p["properties"]["ipAddress"] for p in sub.public_ips if p["id"] == public_id), None
    )
    return public, config["privateIPAddress"]


def test_lists_exactly_the_tagged_controllers_across_pages(azure: Seeded, azure_env: None) -> None:
    before = len(azure.emulator.server.paths)
    clusters = listed(source(azure))

    assert set(clusters) == set(azure.controllers)
    # pages of 4: sub 1 has 17 VMs (5 pages, twice: config and status), 17 NICs (5), 15 IPs (4);
    # sub 2: 3 of each (1 page each, 2 for VMs).
    arm = [p for p in azure.emulator.server.paths[before:] if p.startswith("/subscriptions/")]
    assert len(arm) == (5 * 2 + 5 + 4) + (2 + 1 + 1)
    for name, (_, vm) in azure.controllers.items():
        cluster = clusters[name]
        assert (cluster.source, cluster.cloud) == ("azure", "azure")
        assert (cluster.region, cluster.zone) == (vm["location"], f"{vm['location']}-1")
        assert (cluster.public_address, cluster.private_address) == expected_addresses(azure, vm)
        assert cluster.tags == vm["tags"]
    special = clusters["az-hpc-1"]
    assert (special.user, special.scheduler, special.partitions, special.work_dir) == (
        "rocky",
        "slurm",
        ("debug", "gpu"),
        "/shared/pwrun",
    )
    off = [n for n, c in clusters.items() if c.status == "off"]
    assert off == [n for n, (_, vm) in azure.controllers.items() if n == "ctl-9"]
    assert {clusters[n].user for n, (where, _) in azure.controllers.items() if where == "sub2"} == {
        "hpcadmin"  # the VM's admin user when no tag or option names one
    }
    assert sum(c.public_address is None for c in clusters.values()) == 2


def test_resource_groups_limit_the_search(azure: Seeded, azure_env: None) -> None:
    src = source(azure, subscriptions=[SUBSCRIPTIONS[0]], resource_groups=["hpc-rg"], user="hpc")
    clusters = listed(src)
    expected = {n for n, (where, _) in azure.controllers.items() if where == "hpc-rg"}
    assert set(clusters) == expected
    assert [n for n, c in clusters.items() if c.status == "off"] == ["ctl-9"]
    assert clusters["ctl-2"].user == "hpc" and clusters["az-hpc-1"].user == "rocky"
    assert all(c.public_address and c.private_address for c in clusters.values())


def test_unlisted_subscription_and_untagged_vms_are_ignored(azure: Seeded, azure_env: None) -> None:
    clusters = listed(source(azure))
    assert not set(clusters) & (set(azure.noise) | set(azure.elsewhere))
    assert set(listed(source(azure, tag_key="role", tag_value="compute"))) == set(azure.noise)


def test_secret_from_a_file(azure: Seeded, tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(AZURE_SECRET + "\n")
    secret_file.chmod(0o600)
    src = source(azure, subscriptions=[SUBSCRIPTIONS[1]], client_secret_file=str(secret_file))
    assert len(listed(src)) == 3


def test_wrong_secret_is_refused_and_not_shown(
    azure: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "wrongSecretValue~abcdefghijklmnop"
    monkeypatch.setenv("PWRUN_TEST_AZURE_SECRET", wrong)
    error = source_error(source(azure).fetch, wrong, AZURE_SECRET)
    assert f"subscription {SUBSCRIPTIONS[0]}: authentication failed" in str(error)
    assert "AADSTS7000215" in str(error)


def test_unknown_application(azure: Seeded, azure_env: None) -> None:
    error = source_error(source(azure, client_id="not-registered").fetch, AZURE_SECRET)
    assert "authentication failed" in str(error) and "AADSTS700016" in str(error)


def test_secret_missing(azure: Seeded) -> None:
    error = source_error(source(azure).fetch)
    assert "'client_secret_env'" in str(error) and "PWRUN_TEST_AZURE_SECRET" in str(error)
    error = source_error(source(azure, client_secret_file="/nonexistent/secret").fetch)
    assert "'client_secret_file'" in str(error)


def test_unknown_subscription_is_named(azure: Seeded, azure_env: None) -> None:
    error = source_error(source(azure, subscriptions=["sub-x"]).fetch)
    assert "subscription sub-x: 404 (SubscriptionNotFound)" in str(error)


def test_server_down(azure: Seeded, azure_env: None) -> None:
    down = closed_port_url("https")
    error = source_error(source(azure, authority_host=down, endpoint_url=down).fetch, AZURE_SECRET)
    assert f"subscription {SUBSCRIPTIONS[0]}" in str(error)


@pytest.mark.parametrize("slow", ["", "/subscriptions/"], ids=["authority", "arm"])
def test_slow_server_times_out(azure_env: None, tmp_path: Path, slow: str) -> None:
    with AzureArmEmulator(tmp_path) as emu:
        emu.register_app(TENANT, CLIENT_ID, AZURE_SECRET)
        emu.add_vms(SUBSCRIPTIONS[0], "rg", "eastus", 2)
        emu.server.delay, emu.server.fault_paths = 3.0, slow
        options = azure_options(emu, subscriptions=[SUBSCRIPTIONS[0]], timeout=0.5)
        error = source_error(AzureSource(Options.model_validate(options)).fetch)
    assert f"subscription {SUBSCRIPTIONS[0]}: " in str(error)
    assert "timed out" in str(error).lower() or "'timeout'" in str(error)


def test_malformed_answer(azure_env: None, tmp_path: Path) -> None:
    with AzureArmEmulator(tmp_path) as emu:
        emu.register_app(TENANT, CLIENT_ID, AZURE_SECRET)
        emu.add_vms(SUBSCRIPTIONS[0], "rg", "eastus", 2)
        emu.server.malformed, emu.server.fault_paths = True, "/subscriptions/"
        options = azure_options(emu, subscriptions=[SUBSCRIPTIONS[0]])
        error = source_error(AzureSource(Options.model_validate(options)).fetch)
    assert f"subscription {SUBSCRIPTIONS[0]}: malformed API answer" in str(error)


def test_partial_vm_is_skipped_and_named(azure: Seeded, azure_env: None) -> None:
    src = source(azure, subscriptions=[SUBSCRIPTIONS[1]])
    raw = src.fetch()
    vm = raw[SUBSCRIPTIONS[1]]["vms"][1]
    del vm["location"]
    parsed = src.parse(raw)
    assert len(parsed.clusters) == 2 and vm["name"] not in {c.name for c in parsed.clusters}
    assert [str(p) for p in parsed.problems] == [
        f"inventory source 'azure': subscription {SUBSCRIPTIONS[1]} vm {vm['name']}: "
        "field 'location': Field required; record skipped"
    ]
    del raw[SUBSCRIPTIONS[1]]["nics"]
    error = source_error(lambda: src.parse(raw))
    assert f"subscription {SUBSCRIPTIONS[1]}: field 'nics': Field required" in str(error)


def test_options_are_checked() -> None:
    with pytest.raises(pydantic.ValidationError, match="subscriptions"):
        Options()
    with pytest.raises(pydantic.ValidationError, match="tenant_id and client_id"):
        Options(subscriptions=["s"], auth="client_secret")
    with pytest.raises(pydantic.ValidationError, match="client_secret\n"):
        Options.model_validate({"subscriptions": ["s"], "client_secret": "inline"})
