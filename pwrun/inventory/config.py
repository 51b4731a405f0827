"""The inventory file shared by the Ansible plugin and `pwrun inventory`.

    plugin: pwrun
    strict_sources: false    # true: any source problem (a failed source, a skipped record, a
                             # duplicate name, a passed deadline) fails the whole listing
    sources:
      pw: {}                 # options of each source: see pwrun.inventory.<kind>.Options
      aws: {regions: [us-east-1], deadline: 30}
    # Ansible's constructed and cache options (strict, compose, groups, keyed_groups, cache...)
    # are accepted here and applied by the plugin.

Every error names the file and the field, e.g. "inv.pwrun.yml: sources.pw.timeout: ...".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from pwrun.errors import PwrunError, describe_validation, first_line, read_text
from pwrun.inventory.model import plain
from pwrun.inventory.sources import SOURCE_KINDS, source_kind

FILE_SUFFIXES = ("pwrun.yml", "pwrun.yaml")
M = TypeVar("M", bound=BaseModel)


class _FileModel(BaseModel):
    """Top level of the file; `sources` values are validated by each source's Options."""

    model_config = ConfigDict(extra="forbid")

    plugin: Literal["pwrun", "pwrun.hpc.pwrun"]  # its name in the checkout, its FQCN
    sources: dict[str, dict[str, Any] | None] = Field(min_length=1)
    strict_sources: bool = False
    # Applied by Ansible (constructed and inventory_cache fragments); typed here so typos fail.
    strict: bool = False
    compose: dict[str, str] = Field(default_factory=dict)
    groups: dict[str, str] = Field(default_factory=dict)
    keyed_groups: list[dict[str, Any]] = Field(default_factory=list)
    leading_separator: bool = True
    use_extra_vars: bool = False
    cache: bool = False
    cache_plugin: str | None = None
    cache_timeout: int | None = None
    cache_connection: str | None = None
    cache_prefix: str | None = None


@dataclass(frozen=True)
class InventoryConfig:
    """A validated inventory file: per-source options in SOURCE_KINDS order, and whether any
    source problem fails the listing."""

    path: Path
    sources: dict[str, BaseModel]
    strict_sources: bool = False


def has_inventory_suffix(path: str | Path) -> bool:
    """True when the file name ends in pwrun.yml or pwrun.yaml (Ansible's naming convention)."""
    return str(path).endswith(FILE_SUFFIXES)


def load_config(path: str | Path) -> InventoryConfig:
    """Read and validate an inventory file; PwrunError names the file and the field at fault."""
    path = Path(path)
    if not has_inventory_suffix(path):
        raise PwrunError(
            f"{path}: an inventory file's name must end in {' or '.join(FILE_SUFFIXES)} "
            "(e.g. clusters.pwrun.yml)"
        )
    text = read_text(path, "the inventory file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        problem = getattr(exc, "problem", None) or first_line(exc)
        raise PwrunError(f"{path}: not valid YAML{line}: {problem}") from None
    except (ValueError, RecursionError) as exc:  # a date like 2024-02-30, nesting too deep
        raise PwrunError(f"{path}: a value YAML cannot read: {first_line(exc)}") from None
    return parse_config(data, path)


def parse_config(data: Any, path: Path) -> InventoryConfig:
    """Validate already-loaded YAML data read from `path`."""
    if not isinstance(data, dict):
        raise PwrunError(f"{path}: expected a mapping with 'plugin: pwrun' and 'sources:'")
    top = _validate(_FileModel, data, path, prefix=())
    unknown = [kind for kind in top.sources if kind not in SOURCE_KINDS]
    if unknown:
        raise PwrunError(
            f"{path}: sources.{plain(unknown[0])}: unknown source; "
            f"known sources: {', '.join(SOURCE_KINDS)}"
        )
    sources = {
        kind: _validate(source_kind(kind).options, top.sources[kind] or {}, path, ("sources", kind))
        for kind in SOURCE_KINDS
        if kind in top.sources
    }
    return InventoryConfig(path=path, sources=sources, strict_sources=top.strict_sources)


def _validate(model: type[M], data: Any, path: Path, prefix: tuple[str, ...]) -> M:
    """`model` validated from the file's `data` at `prefix`; PwrunError names every bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = describe_validation(
            exc,
            prefix,
            name=plain,
            where=lambda field: field or "file",
            explain=lambda error: _explain(error, model),
        )
        raise PwrunError(f"{path}: {problems}") from None


def _explain(error: ErrorDetails, model: type[BaseModel]) -> str:
    """Pydantic's message, but an unknown option at the top of `model` lists the valid ones."""
    if error["type"] != "extra_forbidden":
        return error["msg"]
    known = ", ".join(model.model_fields) if len(error["loc"]) == 1 else ""
    return "unknown option" + (f"; valid options: {known}" if known else "")
