"""What every inventory source returns: one `Cluster` per cluster controller."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["on", "off"]
Scheduler = Literal["slurm", "pbs", "none"]


class Cluster(BaseModel):
    """A cluster controller (login node) that pwrun can reach over ssh."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    source: str = Field(description="Source that found it: pw, aws, gcp or azure.")
    public_address: str | None = None
    private_address: str | None = None
    user: str | None = None
    status: Status = "off"
    scheduler: Scheduler = "slurm"
    partitions: tuple[str, ...] = ()
    work_dir: str | None = None
    cloud: str | None = Field(default=None, description="aws, gcp, azure or onprem.")
    region: str | None = None
    zone: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    namespace: str | None = Field(default=None, description="PW namespace (owner); None elsewhere.")

    @property
    def address(self) -> str | None:
        """The address to ssh to: public when there is one, else private."""
        return self.public_address or self.private_address


class Source(ABC):
    """An inventory source: fetches raw, JSON-serialisable API results, then parses them.

    The two steps are apart so that callers (the Ansible plugin) cache the raw results,
    not the built inventory.
    """

    kind: ClassVar[str]

    @abstractmethod
    def fetch(self) -> Any:
        """Query the API; return plain JSON-serialisable data. Raise SourceError on failure."""

    @abstractmethod
    def parse(self, raw: Any) -> list[Cluster]:
        """Turn what `fetch` returned into clusters. Raise SourceError naming the bad field."""
