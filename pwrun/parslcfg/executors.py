"""The executors file: per Parsl label, the site and how to run blocks there.

YAML, keyed by label::

    map:
      site: site-a          # inventory host
      partition: compute
      max_blocks: 2

parsl_utils' executors.json (POOL, PARTITION, NODES, ...) is read too; the fields the platform
used to fill in (HOST_IP, HOST_USER, WORKER_PORT_*) now come from inventory facts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pwrun.errors import PwrunError

LOCAL_SITE = "local"


class ExecutorSpec(BaseModel):
    """How one Parsl executor (one label) runs on one site."""

    model_config = ConfigDict(extra="forbid")

    site: str = Field(description="Inventory host (cluster name); 'local' for this machine.")
    provider: Literal["slurm", "local"] | None = Field(
        None, description="slurm on a cluster, local on this machine (the default for each)."
    )
    partition: str | None = None
    nodes_per_block: int = Field(1, ge=1)
    init_blocks: int = Field(1, ge=0)
    min_blocks: int = Field(0, ge=0)
    max_blocks: int = Field(1, ge=1)
    parallelism: float = Field(1.0, gt=0, le=1)
    walltime: str = Field("00:30:00", pattern=r"^\d+:\d{2}:\d{2}$")
    cores_per_worker: float = Field(1.0, gt=0)
    max_workers_per_node: int | None = Field(None, ge=1)
    scheduler_options: str = ""
    env: dict[str, str] = Field(default_factory=dict)
    worker_init: str = ""
    run_dir: str = Field(
        "~/.pwrun/runs", description="Directory on the site under which each run keeps its files."
    )

    @model_validator(mode="after")
    def _provider_matches_site(self) -> ExecutorSpec:
        expected = "local" if self.site == LOCAL_SITE else "slurm"
        if self.provider not in (None, expected):
            raise ValueError(
                f"provider {self.provider} does not run on site {self.site!r}: "
                + ("use site: local" if self.provider == "local" else "use a cluster's name")
            )
        self.provider = expected
        return self

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            if not name.isidentifier():
                raise ValueError(f"not an environment variable name: {name!r}")
        return env


LEGACY_FIELDS = {
    "PARTITION": "partition",
    "NODES": "nodes_per_block",
    "WALLTIME": "walltime",
    "CORES_PER_WORKER": "cores_per_worker",
    "RUN_DIR": "run_dir",
}
LEGACY_IGNORED = {
    # filled in by the PW platform, now inventory facts; or parsl_utils' own plumbing
    "HOST_IP", "HOST_USER", "WORKER_PORT_1", "WORKER_PORT_2", "ADDRESS", "WORKDIR", "POOL_TYPE",
    "SSH_CHANNEL_SCRIPT_DIR", "WORKER_LOGDIR_ROOT", "NTASKS_PER_NODE", "REQUIRED",
    "CONDA_ENV", "CONDA_DIR", "INSTALL_CONDA", "LOCAL_CONDA_YAML", "PROVIDER_TYPE",
}  # fmt: skip
LEGACY_PROVIDER_KEYS = {
    "partition", "nodes_per_block", "init_blocks", "min_blocks", "max_blocks", "parallelism",
    "walltime", "scheduler_options", "worker_init",
}  # fmt: skip


def from_legacy(label: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Translate one parsl_utils executors.json entry into this file's fields."""
    site = entry.get("POOL") or entry.get("RESOURCE")
    if not site:
        raise ValueError(f"{label}: POOL (or RESOURCE) is required")
    spec: dict[str, Any] = {"site": site}
    for key, value in entry.items():
        if key in LEGACY_FIELDS:
            spec[LEGACY_FIELDS[key]] = value
        elif key == "SlurmProvider":
            unknown = set(value) - LEGACY_PROVIDER_KEYS
            if unknown:
                raise ValueError(f"{label}.SlurmProvider: unsupported {', '.join(sorted(unknown))}")
            spec.update(value)
        elif key not in LEGACY_IGNORED and key not in ("POOL", "RESOURCE"):
            raise ValueError(f"{label}: unknown field {key}")
    for key in ("nodes_per_block",):
        if key in spec:
            spec[key] = int(spec[key])
    if "cores_per_worker" in spec:
        spec["cores_per_worker"] = float(spec["cores_per_worker"])
    return spec


def load_executors(path: Path) -> dict[str, ExecutorSpec]:
    """Read and validate an executors file; errors name the file, label and field."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise PwrunError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise PwrunError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
                         f"{str(exc).splitlines()[0]}") from None  # fmt: skip
    if not isinstance(data, dict) or not data:
        raise PwrunError(f"{path}: expected a mapping of executor labels to settings")
    specs = {}
    for label, entry in data.items():
        if not isinstance(entry, dict):
            raise PwrunError(f"{path}: {label}: expected a mapping of settings")
        try:
            legacy = "POOL" in entry or "RESOURCE" in entry
            specs[str(label)] = ExecutorSpec(**(from_legacy(label, entry) if legacy else entry))
        except ValueError as exc:
            raise PwrunError(f"{path}: {describe(label, exc)}") from None
    return specs


def describe(label: str, exc: ValueError) -> str:
    """One line per problem: label.field: message."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            ".".join([str(label), *map(str, e["loc"])])
            + f": {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
    return str(exc)
