"""List clusters from several sources at once; collect each source's failure instead of stopping."""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pwrun.cluster import hostkeys
from pwrun.errors import PwrunError, SourceError, first_line
from pwrun.inventory.config import InventoryConfig
from pwrun.inventory.model import Cluster, Parsed, Source, deadline_passed
from pwrun.inventory.sources import build_sources

_Outcome = tuple[Any, Parsed, bool] | SourceError


@dataclass
class Listing:
    """What the sources returned: clusters, problems, notes, and raw results for a cache.

    `errors` are what `strict_sources` fails on: failed sources, skipped records, duplicate
    names, passed deadlines. `notes` never fail anything (e.g. a PW privateIp that is no IP).
    """

    clusters: list[Cluster] = field(default_factory=list)
    errors: list[SourceError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    fetched: set[str] = field(default_factory=set)

    @property
    def warnings(self) -> list[str]:
        """Everything worth a warning when not strict: the problems, then the notes."""
        return [*map(str, self.errors), *self.notes]

    def raise_errors(self) -> None:
        """Strict mode: fail with every problem in one message."""
        if self.errors:
            raise PwrunError("; ".join(str(error) for error in self.errors))


def list_clusters(
    sources: Mapping[str, Source],
    *,
    strict_sources: bool = False,
    cached: Mapping[str, Any] | None = None,
) -> Listing:
    """Query every source concurrently (raw results in `cached` are used instead of fetching).

    A failing source is reported in `Listing.errors` and the others still return, and so is a
    source still busy at its deadline (its thread is a daemon, left behind); a bad record is
    skipped and reported, its source's other clusters kept. With `strict_sources`, any error
    raises PwrunError. Names must be unique: a cluster whose name an earlier source (in mapping
    order) already used is dropped and reported as its source's error. `Listing.raw` holds the
    raw results of the sources that succeeded, for the caller to cache.
    """
    cached = cached or {}
    listing = Listing()
    started = time.monotonic()
    futures = {name: _start(name, source, cached.get(name)) for name, source in sources.items()}
    seen: dict[str, str] = {}
    for name, future in futures.items():
        deadline = sources[name].deadline
        try:
            outcome = future.result(timeout=max(0.0, started + deadline - time.monotonic()))
        except FutureTimeout:
            outcome = SourceError(name, deadline_passed(deadline))
        if isinstance(outcome, SourceError):
            listing.errors.append(outcome)
            continue
        raw, parsed, fetched = outcome
        listing.raw[name] = raw
        if fetched:
            listing.fetched.add(name)
        listing.errors += parsed.problems
        listing.notes += parsed.notes
        for cluster in parsed.clusters:
            if cluster.name in seen:
                listing.errors.append(
                    SourceError(
                        name,
                        f"cluster name {cluster.name!r} (field name) is already used by source "
                        f"{seen[cluster.name]!r}; skipped it, rename one of them",
                    )
                )
                continue
            seen[cluster.name] = name
            listing.clusters.append(cluster)
    if strict_sources:
        listing.raise_errors()
    return listing


def list_configured(config: InventoryConfig, cached: Mapping[str, Any] | None = None) -> Listing:
    """List the clusters of a validated inventory file."""
    return list_clusters(
        build_sources(config.sources), strict_sources=config.strict_sources, cached=cached
    )


def _start(name: str, source: Source, cached: Any) -> Future[_Outcome]:
    """`_collect` in a daemon thread: one hung past its deadline keeps no process alive."""
    future: Future[_Outcome] = Future()
    thread = threading.Thread(
        target=lambda: future.set_result(_collect(name, source, cached)),
        name=f"pwrun-source-{name}",
        daemon=True,
    )
    thread.start()
    return future


def _collect(name: str, source: Source, cached: Any) -> _Outcome:
    """Fetch (unless cached) and parse one source; any failure becomes a SourceError."""
    try:
        if cached is not None:
            try:
                return cached, source.parse(cached), False
            except SourceError:
                pass  # a stale or foreign cache entry: fetch afresh
        raw = source.fetch()
        return raw, source.parse(raw), True
    except SourceError as exc:
        return exc
    except Exception as exc:  # an SDK error the source did not translate: still report, not crash
        return SourceError(name, f"unexpected {exc.__class__.__name__}: {first_line(exc)}")


def host_vars(cluster: Cluster, known_hosts: Path | None = None) -> dict[str, Any]:
    """Ansible host variables: ansible_host/ansible_user, every field as pwrun_<field>, and
    `ansible_ssh_common_args` naming `known_hosts` (the file pinning the cluster's host keys)
    and its proxy, when it has them."""
    facts = {f"pwrun_{key}": value for key, value in cluster.model_dump(mode="json").items()}
    facts.pop("pwrun_name")
    if cluster.address:
        facts["ansible_host"] = cluster.address
    if cluster.user:
        facts["ansible_user"] = cluster.user
    options = [f"UserKnownHostsFile={known_hosts}"] if known_hosts else []
    options += [cluster.proxy] if cluster.proxy else []
    if options:
        facts["ansible_ssh_common_args"] = " ".join(f"-o {shlex.quote(o)}" for o in options)
    return facts


def pin_host_keys(cluster: Cluster) -> Path | None:
    """The known_hosts file pinning the host keys an API reported for the cluster, written
    now; None when it reported none (or the cluster has no address yet)."""
    if not (cluster.host_keys and cluster.address):
        return None
    return hostkeys.pin(cluster.name, cluster.address, cluster.host_keys)


def builtin_groups(cluster: Cluster) -> list[str]:
    """Groups every host joins: by source, status and scheduler."""
    return [
        f"source_{cluster.source}",
        f"status_{cluster.status}",
        f"scheduler_{cluster.scheduler}",
    ]
