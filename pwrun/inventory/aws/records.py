"""The EC2 instance fields the `aws` source keeps, and the Cluster an instance becomes."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from pwrun.inventory.aws.options import KIND, Options
from pwrun.inventory.cloud import cluster_fields
from pwrun.inventory.model import Cluster, RawModel, checked, validate
from pwrun.validation import IPAddress, cluster_name

GONE_STATES = ("shutting-down", "terminated")


class _Tag(RawModel):
    Key: str
    Value: str


class _State(RawModel):
    Name: str


class _Placement(RawModel):
    AvailabilityZone: str | None = None


class Instance(RawModel):
    """The part of a DescribeInstances instance that is kept (and cached)."""

    InstanceId: str
    State: _State
    PrivateIpAddress: IPAddress | None = None
    PublicIpAddress: IPAddress | None = None
    Placement: _Placement = _Placement()
    Tags: list[_Tag] = Field(default_factory=list)


KEPT_FIELDS = tuple(Instance.model_fields)


def cluster(region: str, data: Any, options: Options) -> Cluster | None:
    """The cluster of one instance; None unless it is a controller that still exists."""
    instance = validate(Instance, data)
    tags = {tag.Key: tag.Value for tag in instance.Tags}
    if not options.is_controller(tags) or instance.State.Name in GONE_STATES:
        return None
    named = "tag 'Name'" if tags.get("Name") else "field 'InstanceId'"
    return Cluster(
        name=checked(named, cluster_name, tags.get("Name") or instance.InstanceId),
        source=KIND,
        cloud=KIND,
        public_address=instance.PublicIpAddress,
        private_address=instance.PrivateIpAddress,
        status="on" if instance.State.Name == "running" else "off",
        region=region,
        zone=instance.Placement.AvailabilityZone,
        tags=tags,
        **cluster_fields(tags, options.user),
    )
