"""The platform's cluster records (v3 clusters and legacy resources) and the Cluster each one
becomes. Every field is checked where it enters; an absent or blank one is None."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from pwrun.inventory.model import Cluster, RawModel, Scheduler, validate
from pwrun.inventory.pw.options import KIND
from pwrun.validation import (
    Address,
    ClusterName,
    RemotePath,
    UserName,
    address,
    ip_address,
    user_name,
)

CLOUD_OF_TYPE = {
    "gclusterv2": "gcp",
    "google-slurm": "gcp",
    "pclusterv2": "aws",
    "aws-slurm": "aws",
    "azclusterv2": "azure",
    "azure-slurm": "azure",
    "openstack-slurm": "openstack",
    "slurmshv2": "onprem",
    "existing": "onprem",
}


def _user_at_host(value: str) -> str:
    """state.masterNode: `host` or `user@host`."""
    user, _, host = value.rpartition("@")
    if user:
        user_name(user)
    address(host)
    return value


Blank = BeforeValidator(lambda value: None if value == "" else value)  # the API's "unset"
OptionalAddress = Annotated[Address | None, Blank]
OptionalUser = Annotated[UserName | None, Blank]


class Partition(RawModel):
    name: str


class Variables(RawModel):
    workdir: Annotated[RemotePath | None, Blank] = None
    privateIp: str | None = None  # an IP or an interface name
    slurmUsername: OptionalUser = None
    slurmLoginNode: OptionalAddress = None
    scheduler: str | None = None
    jobschedulertype: str | None = None
    region: str | None = None
    zone: str | None = None
    partitions: list[str | Partition] | None = None
    partition_config: list[Partition] | None = None

    def scheduler_of(self, cluster_type: str | None) -> Scheduler:
        """pbs or none when the record says so; slurm otherwise."""
        declared = (self.scheduler or self.jobschedulertype or cluster_type or "").lower()
        if "pbs" in declared:
            return "pbs"
        return "none" if declared == "none" else "slurm"

    def partition_names(self) -> tuple[str, ...]:
        listed = self.partition_config or self.partitions or []
        return tuple(p if isinstance(p, str) else p.name for p in listed)


class State(RawModel):
    masterNode: Annotated[Annotated[str, AfterValidator(_user_at_host)] | None, Blank] = None


class Settings(RawModel):
    slurmUsername: OptionalUser = None


class Record(RawModel):
    """One cluster as either endpoint generation returns it."""

    name: ClusterName
    namespace: str | None = None
    type: str | None = None
    status: str | None = None
    currentSessionStatus: str | None = None
    controllerIp: OptionalAddress = None
    tags: str | list[str] | dict[str, str] | None = None
    state: State | None = None
    settings: Settings | None = None
    variables: Variables | None = None

    def tag_map(self) -> dict[str, str]:
        """Tags as a mapping: names listed (or comma-separated) get an empty value."""
        if isinstance(self.tags, dict):
            return self.tags
        names = self.tags.split(",") if isinstance(self.tags, str) else self.tags or []
        return {name.strip(): "" for name in names if name.strip()}


def cluster(item: Any, platform_user: str | None) -> Cluster:
    """The cluster of one raw record; a RecordError or ValidationError names a bad field.

    The address is the controller IP, else the master node's host, else the login node; the
    user is the record's own, else the master node's, else `platform_user`.
    """
    record = validate(Record, item)
    variables = record.variables or Variables()
    master = (record.state.masterNode if record.state else None) or ""
    master_user, _, master_host = master.rpartition("@")
    user = (
        (record.settings.slurmUsername if record.settings else None)
        or variables.slurmUsername
        or master_user
        or platform_user
    )
    on = record.status == "on" or record.currentSessionStatus == "running"
    return Cluster(
        name=record.name,
        source=KIND,
        public_address=record.controllerIp or master_host or variables.slurmLoginNode or None,
        private_address=ip_or_none(variables.privateIp),
        user=user or None,
        status="on" if on else "off",
        scheduler=variables.scheduler_of(record.type),
        partitions=variables.partition_names(),
        work_dir=variables.workdir,
        cloud=CLOUD_OF_TYPE.get(record.type or ""),
        region=variables.region,
        zone=variables.zone,
        tags=record.tag_map(),
        namespace=record.namespace,
    )


def names_user(item: dict[str, Any]) -> bool:
    """Whether a raw record names its ssh user (else the platform user name is needed)."""
    settings, variables, state = (item.get(k) or {} for k in ("settings", "variables", "state"))
    return bool(
        (isinstance(settings, dict) and settings.get("slurmUsername"))
        or (isinstance(variables, dict) and variables.get("slurmUsername"))
        or (isinstance(state, dict) and "@" in str(state.get("masterNode") or ""))
    )


def ip_or_none(value: str | None) -> str | None:
    """variables.privateIp holds an IP or an interface name: keep only an IP."""
    try:
        return ip_address(value) if value else None
    except ValueError:
        return None
