"""azure-mgmt-compute and azure-mgmt-network for the `azure` source: each subscription's tagged
VMs, their power states, NICs and public IPs, kept as JSON; azure-core's exceptions become
SourceErrors in `_sdk_errors` only.

SDKs are imported in the functions: parsing cached data does not need them.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from pwrun.errors import first_line
from pwrun.inventory.azure.credentials import credential
from pwrun.inventory.azure.options import Options, error
from pwrun.process import run_each


def tagged_vms(options: Options) -> dict[str, dict[str, Any]]:
    """{subscription: {vms, power, nics, public_ips}} for the tagged VMs."""
    shared = credential(options)
    try:
        found = run_each(options.subscriptions, lambda sub: _subscription(options, shared, sub))
    finally:
        shared.close()
    return dict(zip(options.subscriptions, found, strict=True))


def _subscription(options: Options, shared: Any, subscription: str) -> dict[str, Any]:
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.network import NetworkManagementClient

    transport = options.transport() | {"retry_backoff_factor": 0.2, "retry_backoff_max": 2}
    base_url = options.endpoint_url
    with _sdk_errors(options, f"subscription {subscription}"):
        compute = ComputeManagementClient(shared, subscription, base_url, **transport)
        network = NetworkManagementClient(shared, subscription, base_url, **transport)
        with compute, network:
            return _listed(options, compute, network)


def _listed(options: Options, compute: Any, network: Any) -> dict[str, Any]:
    """The tagged VMs of a subscription (or of its listed resource groups), and what they use."""
    groups = options.resource_groups
    vms, nics, public_ips = [], [], []
    if groups:
        for group in groups:
            vms += compute.virtual_machines.list(group)
            nics += network.network_interfaces.list(group)
            public_ips += network.public_ip_addresses.list(group)
    else:
        vms = list(compute.virtual_machines.list_all())
        nics = list(network.network_interfaces.list_all())
        public_ips = list(network.public_ip_addresses.list_all())
    controllers = [vm for vm in vms if options.is_controller(vm.tags)]
    if groups:
        views = run_each(controllers, lambda vm: _instance_view(compute, vm))
        power = {vm.id: _power(view) for vm, view in zip(controllers, views, strict=True)}
    else:
        power = {
            vm.id: _power(vm.properties.instance_view if vm.properties else None)
            for vm in compute.virtual_machines.list_all(status_only="true")
        }
    wanted_nics = {
        ref.id.lower()
        for vm in controllers
        if vm.properties and vm.properties.network_profile
        for ref in vm.properties.network_profile.network_interfaces or []
    }
    kept_nics = {nic.id.lower(): _nic(nic) for nic in nics if nic.id.lower() in wanted_nics}
    wanted_ips = {nic["public_ip"] for nic in kept_nics.values() if nic["public_ip"]}
    return {
        "vms": [_vm(vm) for vm in controllers],
        "power": {vm.id.lower(): power.get(vm.id, "unknown") for vm in controllers},
        "nics": kept_nics,
        "public_ips": {
            ip.id.lower(): ip.properties.ip_address
            for ip in public_ips
            if ip.id.lower() in wanted_ips and ip.properties and ip.properties.ip_address
        },
    }


def _instance_view(compute: Any, vm: Any) -> Any:
    group = vm.id.split("/")[4]
    return compute.virtual_machines.instance_view(group, vm.name)


def _power(view: Any) -> str:
    """`running`, `deallocated`... from an instance view's PowerState/* status."""
    for status in (view.statuses or []) if view else []:
        if status.code and status.code.startswith("PowerState/"):
            return status.code.removeprefix("PowerState/")
    return "unknown"


def _vm(vm: Any) -> dict[str, Any]:
    """The part of a VM that is kept (and cached), in the API's JSON names."""
    data = vm.as_dict()
    properties = data.get("properties") or {}
    return {
        "id": data.get("id"),
        "name": data.get("name"),
        "location": data.get("location"),
        "zones": data.get("zones") or [],
        "tags": data.get("tags") or {},
        "properties": {
            "osProfile": {
                "adminUsername": (properties.get("osProfile") or {}).get("adminUsername")
            },
            "networkProfile": properties.get("networkProfile") or {},
        },
    }


def _nic(nic: Any) -> dict[str, str | None]:
    """The primary IP configuration of a NIC: private address and public IP resource id."""
    configs = (nic.properties.ip_configurations or []) if nic.properties else []
    primary = next((c for c in configs if c.properties and c.properties.primary), None)
    config = primary or (configs[0] if configs else None)
    props = config.properties if config else None
    public = props.public_ip_address.id if props and props.public_ip_address else None
    return {
        "private": props.private_ip_address if props else None,
        "public_ip": public.lower() if public else None,
    }


@contextlib.contextmanager
def _sdk_errors(options: Options, where: str) -> Iterator[None]:
    """azure-core's exceptions as SourceErrors naming `where`."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    try:
        yield
    except ClientAuthenticationError as exc:
        message = re.sub(r"^authentication failed:\s*", "", first_line(exc), flags=re.I)
        raise error(f"{where}: authentication failed: {message}") from None
    except HttpResponseError as exc:
        if exc.status_code is None or exc.status_code == 200:  # an unreadable 200 answer
            raise error(f"{where}: malformed API answer: {first_line(exc)}") from None
        raise error(f"{where}: {exc.status_code} {first_line(exc)}") from None
    except ServiceResponseError as exc:
        raise error(
            f"{where}: no usable answer within {options.timeout:g} s ('timeout'): {first_line(exc)}"
        ) from None
    except ServiceRequestError as exc:
        raise error(f"{where}: cannot reach the API: {first_line(exc)}") from None
