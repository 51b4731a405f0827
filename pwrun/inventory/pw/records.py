"""The platform's cluster records (today's clusters, v3 clusters and legacy resources) and the
Cluster each one becomes. Every field is checked where it enters; an absent or blank one is None."""

from __future__ import annotations

from typing import Annotated, Any

from parallelworks_client.models.general_cluster_status import GeneralClusterStatus
from pydantic import AfterValidator, BeforeValidator, Field

from pwrun.inventory.model import Cluster, RawModel, Scheduler, validate
from pwrun.inventory.pw.options import KIND
from pwrun.validation import (
    Address,
    ClusterName,
    RemotePath,
    UserName,
    address,
    host_key,
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
CLOUD_OF_CSP = {"google": "gcp"}  # today's `csp`: aws, azure, google, openstack, oracle
# Today's statuses (the SDK's GeneralClusterStatus) under which a cluster's controller is up.
ON_STATUSES = frozenset({GeneralClusterStatus.ON, GeneralClusterStatus.ACTIVE})
FINGERPRINT_PREFIXES = ("SHA256:", "MD5:")


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


def _key_or_fingerprint(value: str) -> str:
    """An sshHostKeys entry: a public key, or a fingerprint (kept, never pinned)."""
    return value if value.startswith(FINGERPRINT_PREFIXES) else host_key(value)


HostKeyEntry = Annotated[str, AfterValidator(_key_or_fingerprint)]


class CurrentRecord(RawModel):
    """One cluster of today's `GET /api/clusters` (the SDK's GeneralCluster, camelCase)."""

    name: ClusterName
    id: str | None = None
    status: GeneralClusterStatus
    type: str | None = None
    user: str | None = Field(default=None, description="The owner.")
    ipAddress: OptionalAddress = None
    connectionString: Annotated[Annotated[str, AfterValidator(_user_at_host)] | None, Blank] = None
    shouldPlatformProxy: bool = False
    sshHostKeys: list[HostKeyEntry] | None = None
    schedulerType: str | None = None
    csp: str | None = None
    region: str | None = None
    tags: list[str] | None = None
    latestDeploymentNumber: int | None = None

    def pinnable_keys(self) -> tuple[str, ...]:
        """The host keys known_hosts can pin (fingerprints cannot be)."""
        keys = self.sshHostKeys or []
        return tuple(k for k in keys if not k.startswith(FINGERPRINT_PREFIXES))


def current_cluster(
    item: Any, platform_user: str | None, proxy: str | None, keys: list[str] | None = None
) -> Cluster:
    """The cluster of one record of today's API; `keys` are host keys from /api/ssh/host-keys
    for a record that lists none. The user comes from connectionString (`user@host`), else
    `platform_user`; a proxied cluster gets `proxy` (the source's ssh option)."""
    record = validate(CurrentRecord, item)
    user, _, host = (record.connectionString or "").rpartition("@")
    scheduler = (record.schedulerType or "slurm").lower()
    return Cluster(
        name=record.name,
        source=KIND,
        public_address=record.ipAddress or host or None,
        user=user or platform_user or None,
        status="on" if record.status in ON_STATUSES else "off",
        scheduler="pbs" if "pbs" in scheduler else "none" if scheduler == "none" else "slurm",
        cloud=CLOUD_OF_CSP.get(record.csp or "", record.csp)
        or CLOUD_OF_TYPE.get(record.type or ""),
        region=record.region,
        tags={tag: "" for tag in record.tags or ()},
        namespace=record.user,
        host_keys=record.pinnable_keys() or tuple(keys or ()),
        needs_proxy=record.shouldPlatformProxy,
        proxy=proxy if record.shouldPlatformProxy else None,
    )


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


def names_current_user(item: dict[str, Any]) -> bool:
    """Whether a record of today's API names its ssh user (in connectionString)."""
    return "@" in str(item.get("connectionString") or "")


def wants_host_keys(item: dict[str, Any]) -> bool:
    """Whether to ask /api/ssh/host-keys for a record of today's API: it is on and lists no
    host keys, and names its owner and itself plainly."""
    return (
        item.get("status") in ON_STATUSES
        and not item.get("sshHostKeys")
        and all(isinstance(item.get(k), str) and item[k] for k in ("user", "name"))
    )


def key_lines(answer: Any) -> list[str] | None:
    """The public keys of a /api/ssh/host-keys `hostKeys` list (fingerprints cannot be pinned;
    the Cluster checks the rest)."""
    if not isinstance(answer, list):
        return None
    return [k for k in answer if not (isinstance(k, str) and k.startswith(FINGERPRINT_PREFIXES))]
