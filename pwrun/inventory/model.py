"""What every inventory source returns: one `Cluster` per cluster controller, and its problems.

Every value an API returns is untrusted: names become inventory host names and ssh `Host`
lines, users, addresses and work directories reach ssh command lines and remote shells. So a
`Cluster` only holds values that pass `pwrun.validation`, and a record that does not is
skipped and reported (`Parsed`), never allowed to sink the whole source.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pwrun.errors import SourceError, describe_validation, shorten_quote, shown
from pwrun.validation import (
    CLUSTER_NAME,
    Address,
    ClusterName,
    HostKey,
    IPAddress,
    RemotePath,
    UserName,
)

Status = Literal["on", "off"]
Scheduler = Literal["slurm", "pbs", "none"]
DEFAULT_DEADLINE = 60.0
MAX_REPORTED = 10  # skipped records reported one by one per source; the rest are counted
M = TypeVar("M", bound=BaseModel)


# A source problem anywhere in a line (after "[WARNING]: ", "warning: ", "error: ", ...).
SOURCE_PROBLEM = re.compile(r"inventory source '(?P<source>[a-z0-9_-]+)': (?P<problem>.+)")


def note_prefix(kind: str) -> str:
    """How a note starts: something worth knowing about a cluster that is listed all the same."""
    return f"inventory note ({kind}): "


def deadline_passed(deadline: float) -> str:
    """What a source that ran out of time is told (after its name, and where it was)."""
    return f"no complete answer within {deadline:g} s (option 'deadline')"


class SourceOptions(BaseModel):
    """Options every source has."""

    model_config = ConfigDict(extra="forbid")

    deadline: float = Field(
        DEFAULT_DEADLINE,
        gt=0,
        le=3600,
        description="Seconds the source may take in all (every request, retry and page).",
    )


class Cluster(BaseModel):
    """A cluster controller (login node) that pwrun can reach over ssh."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: ClusterName
    source: str = Field(description="Source that found it: pw, aws, gcp or azure.")
    public_address: Address | None = None
    private_address: IPAddress | None = None
    user: UserName | None = None
    status: Status = "off"
    scheduler: Scheduler = "slurm"
    partitions: tuple[str, ...] = ()
    work_dir: RemotePath | None = None
    cloud: str | None = Field(default=None, description="aws, gcp, azure or onprem.")
    region: str | None = None
    zone: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    namespace: str | None = Field(default=None, description="PW namespace (owner); None elsewhere.")
    api: str | None = Field(
        default=None, description="PW endpoint generation that listed it: current, v3, legacy."
    )
    host_keys: tuple[HostKey, ...] = Field(
        default=(), description="The controller's sshd host keys as its platform reports them."
    )
    proxy: str | None = Field(
        default=None,
        description="The ssh option (ProxyJump=... or ProxyCommand=...) that reaches a cluster "
        "the platform proxies; None when it is dialled directly.",
    )
    needs_proxy: bool = Field(
        default=False, description="The platform proxies ssh to it (PW shouldPlatformProxy)."
    )

    @property
    def address(self) -> str | None:
        """The address to ssh to: public when there is one, else private."""
        return self.public_address or self.private_address


class RawModel(BaseModel):
    """A view of an API record: unknown fields are ignored, known ones are checked."""

    model_config = ConfigDict(extra="ignore")


class RecordError(ValueError):
    """One API record is unusable; the message names the field and says what is allowed."""


def plain(value: object) -> str:
    """A name (region, project, option...) for a message: as it is when plain, else `shown`."""
    return value if isinstance(value, str) and CLUSTER_NAME.fullmatch(value) else shown(value)


def record_id(data: Any, key: str, index: int) -> str:
    """A record's name for messages: its `key` when that is a plain name, else its position."""
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) and CLUSTER_NAME.fullmatch(value) else f"#{index}"


def describe(exc: ValidationError) -> str:
    """The first problem of a record's validation error as "field 'a.b': what is wrong"."""
    return describe_validation(
        exc, first=True, where=lambda path: f"field {path!r}" if path else "the record"
    )


def validate(model: type[M], data: Any) -> M:
    """`model` validated from API data; a RecordError names the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RecordError(describe(exc)) from None


def checked(what: str, check: Callable[[str], str], value: str) -> str:
    """`value` through one of pwrun.validation's checks; a RecordError names `what`."""
    try:
        return check(value)
    except ValueError as exc:
        raise RecordError(f"{what}: {shorten_quote(str(exc), value)}") from None


class Parsed:
    """What `Source.parse` returns: the usable clusters, the records it skipped, and notes.

    `add` builds one record's cluster; a RecordError or a failed Cluster validation skips that
    record only. A name the source already used skips the later record.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.clusters: list[Cluster] = []
        self._skipped: list[str] = []  # why each skipped record was skipped
        self._notes: list[str] = []
        self._found_at: dict[str, str] = {}

    def add(self, where: str, build: Callable[[], Cluster | None]) -> Cluster | None:
        """Keep and return the cluster `build` makes of the record at `where`; None when the
        record is skipped or is no controller (`build` returned None)."""
        try:
            cluster = build()
        except RecordError as exc:
            problem = str(exc)
        except ValidationError as exc:
            problem = describe(exc)
        else:
            if cluster is None:
                return None
            if cluster.name not in self._found_at:
                self._found_at[cluster.name] = where
                self.clusters.append(cluster)
                return cluster
            problem = f"name {cluster.name!r} is already used by {self._found_at[cluster.name]}"
        self._skipped.append(f"{where}: {problem}; record skipped")
        return None

    def note(self, where: str, message: str) -> None:
        """Something worth saying about a cluster that is kept as it is: not a failure."""
        self._notes.append(f"{where}: {message}")

    @property
    def problems(self) -> list[SourceError]:
        """One error per skipped record (the first MAX_REPORTED, then a count of the rest)."""
        return [SourceError(self.kind, text) for text in _capped(self._skipped, "records skipped")]

    @property
    def notes(self) -> list[str]:
        """The notes (the first MAX_REPORTED, then a count of the rest)."""
        return [note_prefix(self.kind) + text for text in _capped(self._notes, "notes")]


def _capped(texts: list[str], what: str) -> list[str]:
    """The first MAX_REPORTED of `texts`, then how many more `what` there were."""
    more = len(texts) - MAX_REPORTED
    return texts[:MAX_REPORTED] + ([f"{more} more {what}"] if more > 0 else [])


Opts = TypeVar("Opts", bound=SourceOptions)


class Source(ABC, Generic[Opts]):
    """An inventory source: fetches raw, JSON-serialisable API results, then parses them.

    The two steps are apart so that callers (the Ansible plugin) cache the raw results,
    not the built inventory.
    """

    kind: ClassVar[str]

    def __init__(self, options: Opts) -> None:
        self.options = options

    @property
    def deadline(self) -> float:
        """Seconds `fetch` and `parse` may take together (enforced by the caller)."""
        return self.options.deadline

    @abstractmethod
    def fetch(self) -> Any:
        """Query the API; return plain JSON-serialisable data. Raise SourceError on failure."""

    @abstractmethod
    def parse(self, raw: Any) -> Parsed:
        """Turn what `fetch` returned into clusters, skipping bad records (see `Parsed`).

        Raise SourceError only when the data as a whole is unusable.
        """
