"""What the `azure` source keeps of a subscription (VMs, power states, NICs, public IPs), and
the Cluster a VM becomes."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from pwrun.inventory.azure.options import KIND, Options
from pwrun.inventory.cloud import cluster_fields
from pwrun.inventory.model import Cluster, RawModel, validate
from pwrun.validation import ClusterName, UserName


class _Ref(RawModel):
    id: str


class _OsProfile(RawModel):
    adminUsername: UserName | None = None


class _NetworkProfile(RawModel):
    networkInterfaces: list[_Ref] = Field(default_factory=list)


class _VmProperties(RawModel):
    osProfile: _OsProfile = Field(default_factory=_OsProfile)
    networkProfile: _NetworkProfile = Field(default_factory=_NetworkProfile)


class Vm(RawModel):
    """A VM as cached, in the API's JSON names."""

    id: str
    name: ClusterName
    location: str
    zones: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)
    properties: _VmProperties = Field(default_factory=_VmProperties)


class Nic(RawModel):
    """A NIC's primary IP configuration: private address, public IP resource id (lowercase)."""

    private: str | None = None
    public_ip: str | None = None


class Subscription(RawModel):
    """One subscription as cached; ids (keys) are lowercase, VMs are checked one by one."""

    vms: list[Any]
    power: dict[str, str]
    nics: dict[str, Nic]
    public_ips: dict[str, str]


def cluster(sub: Subscription, data: Any, options: Options) -> Cluster | None:
    """The cluster of one VM of `sub`; None unless it is tagged as a controller."""
    vm = validate(Vm, data)
    if not options.is_controller(vm.tags):
        return None
    refs = vm.properties.networkProfile.networkInterfaces
    nic = (sub.nics.get(refs[0].id.lower()) if refs else None) or Nic()
    default_user = options.user or vm.properties.osProfile.adminUsername
    return Cluster(
        name=vm.name,
        source=KIND,
        cloud=KIND,
        public_address=sub.public_ips.get(nic.public_ip or ""),
        private_address=nic.private,
        status="on" if sub.power.get(vm.id.lower()) == "running" else "off",
        region=vm.location,
        zone=f"{vm.location}-{vm.zones[0]}" if vm.zones else None,
        tags=vm.tags,
        **cluster_fields(vm.tags, default_user),
    )
