"""Turn PW clusters on and off through the endpoint generation that lists them, and wait.

- today's: `POST /api/organizations/<org>/users/<owner>/clusters/<name>/provision` (a cluster
  never deployed) or `/resume`, and `/stop`; on when its status is on or active and it has an
  address;
- v3: `POST` / `DELETE /api/compute/clusters/<namespace>/<name>/sessions`; on when its status is
  on, its session running and its controller address known;
- legacy: `GET /api/resources/start?id=` and `/stop?id=`; on when its status is on and its
  master node known.

Every failure is an InfrastructureError naming the cluster and what the API said.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlencode

from pwrun.console import err
from pwrun.errors import InfrastructureError, PwrunError, SourceError, source_prefix
from pwrun.inventory.config import load_config
from pwrun.inventory.pw import records
from pwrun.inventory.pw.client import PwClient
from pwrun.inventory.pw.options import KIND, Options
from pwrun.inventory.pw.source import PwSource, session_path

State = Literal["on", "starting", "off", "stopping", "failed"]
STARTING = frozenset({"provisioning", "resuming", "connecting", "updating"})
FAILED = frozenset({"failed", "deleted", "input_needed"})
POLL_SECONDS = 2.0


@dataclass(frozen=True)
class Power:
    """A cluster's power state, and the platform's own word for it."""

    name: str
    state: State
    status: str
    address: str | None = None

    def describe(self) -> str:
        said = f" ({self.status})" if self.status and self.status != self.state else ""
        return f"{self.name} {self.state}{said}"


@dataclass(frozen=True)
class StartedCluster:
    """A cluster pwrun started, and how to stop it again (recorded in run.json)."""

    name: str
    inventory: str  # the *.pwrun.yml whose sources.pw reaches its platform
    api: str
    namespace: str | None = None
    id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def power_of(api: str, item: dict[str, Any]) -> Power:
    """The power state of one raw record of generation `api`."""
    name, status = str(item.get("name")), str(item.get("status") or "")
    if api == "current":
        address = item.get("ipAddress") or None
        if status in records.ON_STATUSES:
            return Power(name, "on" if address else "starting", status, address)
        state: State = "starting" if status in STARTING else "failed" if status in FAILED else "off"
        return Power(name, "stopping" if status == "stopping" else state, status)
    if api == "v3":
        address = item.get("controllerIp") or None
        session = str(item.get("currentSessionStatus") or "")
        if status == "on":
            ready = session == "running" and address
            return Power(name, "on" if ready else "starting", session or status, address)
        return Power(name, "off", status)
    master = (
        (item.get("state") or {}).get("masterNode") if isinstance(item.get("state"), dict) else None
    )
    if status == "on" and master:
        return Power(name, "on", status, str(master).rpartition("@")[2])
    return Power(name, "off", status)


class PwClusters:
    """The PW clusters an inventory file's `pw` source reaches: their power, start and stop."""

    def __init__(self, inventory: Path) -> None:
        config = load_config(inventory)
        options = config.sources.get(KIND)
        if not isinstance(options, Options):
            raise PwrunError(f"{inventory}: no 'pw' source: only PW clusters can be started")
        self.inventory = inventory
        self.source = PwSource(options)
        self._organization: str | None = None

    def listing(self, what: str = "PW platform") -> tuple[str, dict[str, dict[str, Any]]]:
        """The generation that answered, and each raw record by cluster name; a failure's
        message starts with `what`."""
        raw = self._call(what, self.source.fetch_with)
        found: dict[str, dict[str, Any]] = {}
        for item in raw["clusters"]:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                found.setdefault(item["name"], item)
        return raw["api"], found

    def powers(self, names: Iterable[str]) -> dict[str, Power]:
        """The power state of each named cluster (one listing for all)."""
        names = list(names)
        api, found = self.listing(f"cluster {', '.join(names)}")
        return {name: power_of(api, self._record(found, name)) for name in names}

    def start(self, name: str, record: Callable[[StartedCluster], None]) -> StartedCluster | None:
        """Start `name` unless it is on or starting; `record` is told before the request goes
        out (so a kill -9 right after still leaves a trace). None when nothing was started."""
        api, found = self.listing(f"cluster {name}")
        item = self._record(found, name)
        if power_of(api, item).state in ("on", "starting"):
            return None
        started = self._started(api, item)
        record(started)
        if api == "current":
            how = "resume" if item.get("latestDeploymentNumber") else "provision"
            self._request(name, "POST", f"{self._owned(started)}/{how}")
        elif api == "v3":
            self._request(name, "POST", _sessions(started))
        else:
            self._request(name, "GET", "/api/resources/start", urlencode({"id": started.id or ""}))
        return started

    def stop_each(self, names: Iterable[str]) -> None:
        """Stop each named cluster that is on or starting (whoever started it)."""
        api, found = self.listing()
        for name in names:
            item = self._record(found, name)
            if power_of(api, item).state in ("on", "starting"):
                self.stop(self._started(api, item))

    def stop(self, started: StartedCluster) -> None:
        """Stop a cluster through the generation that listed it when it was started."""
        if started.api == "current":
            self._request(started.name, "POST", f"{self._owned(started)}/stop")
        elif started.api == "v3":
            self._request(started.name, "DELETE", _sessions(started))
        else:
            query = urlencode({"id": started.id or ""})
            self._request(started.name, "GET", "/api/resources/stop", query)

    def wait(
        self,
        names: list[str],
        want: State,
        timeout: float,
        progress: Callable[[list[Power]], None],
        interval: float = POLL_SECONDS,
    ) -> dict[str, Power]:
        """Poll until every cluster in `names` is in state `want`; `progress` is told each
        change. A cluster that failed, or is not there by `timeout`, is an error naming it and
        the platform's status."""
        until = time.monotonic() + timeout
        shown: list[Power] = []
        while True:
            powers = self.powers(names)
            if list(powers.values()) != shown:
                shown = list(powers.values())
                progress(shown)
            for power in shown:
                if power.state == "failed":
                    raise InfrastructureError(
                        f"cluster {power.name}: the platform says {power.status!r} while "
                        f"waiting for it to be {want}"
                    )
            late = [p for p in shown if p.state != want]
            if not late:
                return powers
            if time.monotonic() >= until:
                states = ", ".join(p.describe() for p in late)
                raise InfrastructureError(f"cluster not {want} within {timeout:g} s: {states}")
            time.sleep(min(interval, max(0.0, until - time.monotonic())))

    def _started(self, api: str, item: dict[str, Any]) -> StartedCluster:
        """How to stop the cluster of a raw record: its generation, namespace (owner) and id."""
        owner = _text(item.get("namespace") if api != "current" else item.get("user"))
        return StartedCluster(item["name"], str(self.inventory), api, owner, _text(item.get("id")))

    def _owned(self, started: StartedCluster) -> str:
        """Today's path of a cluster: /api/organizations/<org>/users/<owner>/clusters/<name>."""
        if self._organization is None:
            session = self._call(
                f"cluster {started.name}", lambda client: client.get(session_path("current"))
            )
            org = session.get("organization") if isinstance(session, dict) else None
            if not isinstance(org, str) or not org:
                raise InfrastructureError(
                    f"cluster {started.name}: the platform named no organization"
                )
            self._organization = org
        owner = started.namespace or ""
        return (
            f"/api/organizations/{quote(self._organization, safe='')}/users/"
            f"{quote(owner, safe='')}/clusters/{quote(started.name, safe='')}"
        )

    def _record(self, found: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
        if name not in found:
            known = ", ".join(sorted(found)) or "none"
            raise PwrunError(
                f"{self.inventory}: no PW cluster {name!r} on the platform (clusters: {known})"
            )
        return found[name]

    def _request(self, name: str, method: str, path: str, query: str = "") -> None:
        self._call(f"cluster {name}", lambda client: client.request(method, path, query=query))

    def _call(self, what: str, call: Callable[[PwClient], Any]) -> Any:
        """`call` with a client of its own (each within the source's deadline); a failure as
        an InfrastructureError that starts with `what`."""
        try:
            with self.source.client() as client:
                return call(client)
        except SourceError as exc:
            raise InfrastructureError(f"{what}: {_said(exc)}") from None


def _sessions(started: StartedCluster) -> str:
    ns, name = quote(started.namespace or "", safe=""), quote(started.name, safe="")
    return f"/api/compute/clusters/{ns}/{name}/sessions"


def _said(exc: SourceError) -> str:
    return str(exc).removeprefix(source_prefix(KIND))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def start_and_wait(
    inventory: Path,
    names: list[str],
    timeout: float,
    record: Callable[[StartedCluster], None],
    progress: Callable[[list[Power]], None],
    interval: float = POLL_SECONDS,
) -> list[StartedCluster]:
    """Start the named clusters that are off and wait until all of them are on; `record` is
    told of each before its start is asked. The caller stops what was started when this fails
    (`stop_all`): a run at its teardown, `pwrun clusters start` at once."""
    clusters = PwClusters(inventory)
    started = [s for name in names if (s := clusters.start(name, record)) is not None]
    clusters.wait(names, "on", timeout, progress, interval)
    return started


@dataclass
class Stopped:
    """What `stop_all` could not stop: the clusters' names, and one message per cluster."""

    failed: list[str]
    problems: list[str]


def stop_all(started: Iterable[StartedCluster]) -> Stopped:
    """Stop clusters pwrun started, each through the inventory file that reached it."""
    stopped = Stopped([], [])
    for cluster in started:
        try:
            PwClusters(Path(cluster.inventory)).stop(cluster)
        except PwrunError as exc:
            stopped.failed.append(cluster.name)
            stopped.problems.append(str(exc))  # names the cluster, or the inventory file
    return stopped


def show_progress(powers: list[Power]) -> None:
    """The progress display: one line per change of any cluster's state."""
    err.print("clusters: " + ", ".join(p.describe() for p in powers), highlight=False, markup=False)
