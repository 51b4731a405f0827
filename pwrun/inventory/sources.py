"""Registry of inventory sources: kind -> (options model, Source class), imported lazily.

Each source is a package `pwrun.inventory.<kind>` that exports `Options` (a pydantic model) and
a `Source` subclass; inside, `options`, `client` (the API, its errors as SourceErrors),
`records` (API data to `Cluster`) and `source`. Packages are imported only when an inventory
file names their kind, so a missing cloud SDK breaks only the source that needs it.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from pwrun.errors import PwrunError, SourceError
from pwrun.inventory.model import Source

_CLASSES = {"pw": "PwSource", "aws": "AwsSource", "gcp": "GcpSource", "azure": "AzureSource"}
SOURCE_KINDS: tuple[str, ...] = tuple(_CLASSES)


@dataclass(frozen=True)
class SourceKind:
    """What pwrun needs to know about one kind of source."""

    name: str
    options: type[BaseModel]
    source: type[Source[Any]]


@functools.cache
def source_kind(kind: str) -> SourceKind:
    """Import the module of `kind`; a PwrunError names an unknown kind or a missing SDK."""
    if kind not in _CLASSES:
        raise PwrunError(f"unknown inventory source {kind!r}; known sources: {', '.join(_CLASSES)}")
    try:
        module = importlib.import_module(f"pwrun.inventory.{kind}")
    except ImportError as exc:
        raise SourceError(kind, f"cannot be loaded ({exc}); is its SDK installed?") from None
    return SourceKind(kind, module.Options, getattr(module, _CLASSES[kind]))


def build_sources(options: Mapping[str, BaseModel]) -> dict[str, Source]:
    """One Source per configured kind, in the order of SOURCE_KINDS (which decides duplicates)."""
    return {
        kind: source_kind(kind).source(options[kind]) for kind in SOURCE_KINDS if kind in options
    }
