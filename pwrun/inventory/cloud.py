"""What the AWS, GCP and Azure sources share: common options, tags to cluster fields, errors.

A controller is an instance whose tag (AWS, Azure) or label (GCP) `tag_key` equals `tag_value`
(default `pwrun-role=controller`). These per-instance tags, when present, fill the rest:

- `pwrun-user`: ssh user (else the source's `user` option)
- `pwrun-scheduler`: slurm (default), pbs or none
- `pwrun-partitions`: partition names separated by commas or spaces
- `pwrun-work-dir`: the work directory on the cluster
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pwrun.errors import SourceError
from pwrun.inventory.model import Cluster

DEFAULT_TAG_KEY = "pwrun-role"
DEFAULT_TAG_VALUE = "controller"
SETTING_KEYS = ("pwrun-user", "pwrun-scheduler", "pwrun-partitions", "pwrun-work-dir")
SCHEDULERS = ("slurm", "pbs", "none")
MAX_WORKERS = 8

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class CloudOptions(BaseModel):
    """Options every cloud source has."""

    model_config = ConfigDict(extra="forbid")

    tag_key: str = Field(DEFAULT_TAG_KEY, min_length=1, description="Tag marking controllers.")
    tag_value: str = Field(DEFAULT_TAG_VALUE, description="Value `tag_key` must have.")
    user: str | None = Field(
        None, description="ssh user for controllers without a `pwrun-user` tag."
    )
    endpoint_url: str | None = Field(
        None, description="API endpoint override, for private endpoints and local test servers."
    )
    timeout: float = Field(10.0, gt=0, le=300, description="Seconds per API request.")
    retries: int = Field(2, ge=0, le=10, description="Retries of a failed request (SDK's own).")


class RawModel(BaseModel):
    """A view of an API object: unknown fields are ignored, known ones are checked."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def validate(kind: str, model: type[M], data: Any, where: str) -> M:
    """Validate API data; a bad field becomes a SourceError naming `where` and the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "(whole object)"
        raise SourceError(kind, f"{where}: field {field!r}: {error['msg']}") from None


def cluster_fields(
    kind: str, where: str, settings: Mapping[str, str], default_user: str | None
) -> dict[str, Any]:
    """The Cluster fields that come from the `pwrun-*` tags of one controller."""
    scheduler = settings.get("pwrun-scheduler", "slurm").strip().lower()
    if scheduler not in SCHEDULERS:
        raise SourceError(
            kind,
            f"{where}: tag 'pwrun-scheduler' is {scheduler!r}; expected one of "
            + ", ".join(SCHEDULERS),
        )
    partitions = settings.get("pwrun-partitions", "")
    return {
        "user": settings.get("pwrun-user") or default_user,
        "scheduler": scheduler,
        "partitions": tuple(name for name in re.split(r"[,\s]+", partitions) if name),
        "work_dir": settings.get("pwrun-work-dir") or None,
    }


def unique_names(kind: str, clusters: Iterable[tuple[str, Cluster]]) -> list[Cluster]:
    """Clusters in order; two with one name is an error naming where both were found."""
    seen: dict[str, str] = {}
    result = []
    for where, cluster in clusters:
        if cluster.name in seen:
            raise SourceError(
                kind,
                f"two controllers are named {cluster.name!r} ({seen[cluster.name]} and {where}); "
                "give one a different name",
            )
        seen[cluster.name] = where
        result.append(cluster)
    return result


def run_each(tasks: Iterable[T], work: Callable[[T], Any]) -> list[Any]:
    """`work` on every task, a few at a time, results in task order; the first error wins."""
    tasks = list(tasks)
    if len(tasks) == 1:
        return [work(tasks[0])]
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(tasks) or 1)) as pool:
        return list(pool.map(work, tasks))


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's first line, shortened: SDK messages can run to whole response bodies."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
