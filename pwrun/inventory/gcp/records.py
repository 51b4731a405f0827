"""The Compute Engine instance fields the `gcp` source keeps, and the Cluster an instance
becomes."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from pwrun.inventory.cloud import cluster_fields
from pwrun.inventory.gcp.options import KIND, Options
from pwrun.inventory.model import Cluster, RawModel, validate
from pwrun.validation import ClusterName, IPAddress


class _AccessConfig(RawModel):
    natIP: IPAddress | None = None


class _Nic(RawModel):
    networkIP: IPAddress | None = None
    accessConfigs: list[_AccessConfig] = Field(default_factory=list)


class Instance(RawModel):
    """An instance as cached: `settings` holds its `pwrun-*` metadata items."""

    name: ClusterName
    status: str = Field(min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)
    networkInterfaces: list[_Nic] = Field(default_factory=list)
    settings: dict[str, str] = Field(default_factory=dict)


def cluster(zone: str, data: Any, options: Options) -> Cluster | None:
    """The cluster of one instance of `zone`; None unless it is labelled as a controller."""
    instance = validate(Instance, data)
    if not options.is_controller(instance.labels):
        return None
    nic = instance.networkInterfaces[0] if instance.networkInterfaces else _Nic()
    public = next((ac.natIP for ac in nic.accessConfigs if ac.natIP), None)
    settings = {**instance.labels, **instance.settings}
    return Cluster(
        name=instance.name,
        source=KIND,
        cloud=KIND,
        public_address=public,
        private_address=nic.networkIP,
        status="on" if instance.status == "RUNNING" else "off",
        region=zone.rsplit("-", 1)[0],
        zone=zone,
        tags=instance.labels,
        **cluster_fields(settings, options.user, tag="metadata item or label"),
    )
