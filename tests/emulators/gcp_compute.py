"""A local emulator of the GCP Compute Engine REST API (instances) and Google's OAuth endpoint.

The real google-cloud-compute client runs against it unchanged (transport="rest",
client_options api_endpoint=emu.url). Auth is real (tests/emulators/google_api.py): compute_v1
sends self-signed JWTs for service accounts.

    with GcpComputeEmulator() as emu:
        emu.add_instances("proj", "us-central1-a", 500)            # controllers
        emu.add_instances("proj", "us-central1-a", 100, controller=False)
        key_file = emu.service_account_file(tmp_dir)
"""

from __future__ import annotations

import base64
import itertools
import re
from typing import Any

from tests.emulators.cloud_http import Reply, Request
from tests.emulators.google_api import GoogleApi, b64decode, google_error

API = "https://www.googleapis.com/compute/v1"
MAX_PAGE = 500


class GcpComputeEmulator(GoogleApi):
    """Compute Engine instances.list / aggregatedList with real paging, filter and auth."""

    def __init__(self) -> None:
        super().__init__()
        self.zones: dict[str, dict[str, list[dict[str, Any]]]] = {}  # project -> zone -> list
        self._serial = itertools.count(1)
        self.server.route(
            "GET",
            r"/compute/v1/projects/(?P<project>[^/]+)/zones/(?P<zone>[^/]+)/instances",
            self._list,
        )
        self.server.route(
            "GET",
            r"/compute/v1/projects/(?P<project>[^/]+)/aggregated/instances",
            self._aggregated,
        )

    # --- test set-up -------------------------------------------------------------------------

    def add_zone(self, project: str, zone: str) -> None:
        self.zones.setdefault(project, {}).setdefault(zone, [])

    def add_instances(
        self,
        project: str,
        zone: str,
        count: int,
        *,
        controller: bool = True,
        status: str = "RUNNING",
        labels: dict[str, str] | None = None,
        metadata: dict[str, str] | None = None,
        public: bool = True,
        prefix: str | None = None,
    ) -> list[dict[str, Any]]:
        """Add `count` instances shaped like the real API's; controllers carry the default label."""
        self.add_zone(project, zone)
        made = []
        for _ in range(count):
            n = next(self._serial)
            name = f"{prefix or ('ctl' if controller else 'node')}-{n}"
            all_labels = {"pwrun-role": "controller"} if controller else {"role": "compute"}
            all_labels.update(labels or {})
            items = {"ssh-keys": "admin:ssh-ed25519 AAAAC3Nza... admin", **(metadata or {})}
            made.append(self._instance(project, zone, name, n, status, all_labels, items, public))
        self.zones[project][zone].extend(made)
        return made

    def _instance(
        self,
        project: str,
        zone: str,
        name: str,
        n: int,
        status: str,
        labels: dict[str, str],
        metadata: dict[str, str],
        public: bool,
    ) -> dict[str, Any]:
        region = zone.rsplit("-", 1)[0]
        nic: dict[str, Any] = {
            "kind": "compute#networkInterface",
            "network": f"{API}/projects/{project}/global/networks/default",
            "subnetwork": f"{API}/projects/{project}/regions/{region}/subnetworks/default",
            "networkIP": f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}",
            "name": "nic0",
            "fingerprint": "bJAcKqHzd1Q=",
            "stackType": "IPV4_ONLY",
        }
        if public and status == "RUNNING":
            nic["accessConfigs"] = [
                {
                    "kind": "compute#accessConfig",
                    "type": "ONE_TO_ONE_NAT",
                    "name": "External NAT",
                    "natIP": f"34.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}",
                    "networkTier": "PREMIUM",
                }
            ]
        zone_url = f"{API}/projects/{project}/zones/{zone}"
        return {
            "kind": "compute#instance",
            "id": str(4_000_000_000_000_000_000 + n),
            "creationTimestamp": "2026-01-01T00:00:00.000-08:00",
            "name": name,
            "machineType": f"{zone_url}/machineTypes/n2-standard-4",
            "status": status,
            "zone": zone_url,
            "canIpForward": False,
            "networkInterfaces": [nic],
            "disks": [
                {
                    "kind": "compute#attachedDisk",
                    "type": "PERSISTENT",
                    "mode": "READ_WRITE",
                    "source": f"{zone_url}/disks/{name}",
                    "deviceName": name,
                    "index": 0,
                    "boot": True,
                    "autoDelete": True,
                    "interface": "SCSI",
                    "diskSizeGb": "50",
                }
            ],
            "metadata": {
                "kind": "compute#metadata",
                "fingerprint": "Xw1Dm3nqV2c=",
                "items": [{"key": k, "value": v} for k, v in metadata.items()],
            },
            "selfLink": f"{zone_url}/instances/{name}",
            "scheduling": {"onHostMaintenance": "MIGRATE", "automaticRestart": True},
            "cpuPlatform": "Intel Cascade Lake",
            "labels": labels,
            "labelFingerprint": "42WmSpB8rSM=",
            "fingerprint": "k6LVRtDsWTs=",
        }

    # --- instances ---------------------------------------------------------------------------

    def _check(self, request: Request, project: str) -> None:
        self.identity(request)
        if project not in self.zones:
            raise google_error(
                404, f"The resource 'projects/{project}' was not found", "notFound", "NOT_FOUND"
            )

    def _list(self, request: Request, match: re.Match[str]) -> Reply:
        project, zone = match["project"], match["zone"]
        self._check(request, project)
        if zone not in self.zones[project]:
            raise google_error(
                404,
                f"The resource 'projects/{project}/zones/{zone}' was not found",
                "notFound",
                "NOT_FOUND",
            )
        selected = _select(self.zones[project][zone], request.query.get("filter", ""))
        start, size = _page(request)
        body: dict[str, Any] = {
            "kind": "compute#instanceList",
            "id": f"projects/{project}/zones/{zone}/instances",
            "items": selected[start : start + size],
            "selfLink": f"{API}/projects/{project}/zones/{zone}/instances",
        }
        if start + size < len(selected):
            body["nextPageToken"] = _token_for(start + size)
        return 200, body, {}

    def _aggregated(self, request: Request, match: re.Match[str]) -> Reply:
        project = match["project"]
        self._check(request, project)
        expression = request.query.get("filter", "")
        flat = [
            (zone, item)
            for zone, instances in self.zones[project].items()
            for item in _select(instances, expression)
        ]
        start, size = _page(request)
        items: dict[str, Any] = {}
        for zone, item in flat[start : start + size]:
            items.setdefault(f"zones/{zone}", {"instances": []})["instances"].append(item)
        body: dict[str, Any] = {
            "kind": "compute#instanceAggregatedList",
            "id": f"projects/{project}/aggregated/instances",
            "items": items,
            "selfLink": f"{API}/projects/{project}/aggregated/instances",
        }
        if start + size < len(flat):
            body["nextPageToken"] = _token_for(start + size)
        return 200, body, {}


def _page(request: Request) -> tuple[int, int]:
    """(offset, size) of the page asked for: pageToken is opaque to clients, an offset here."""
    try:
        size = min(int(request.query.get("maxResults", MAX_PAGE)), MAX_PAGE)
        token = request.query.get("pageToken")
        return (int(b64decode(token)) if token else 0), size
    except ValueError:
        raise google_error(
            400, "Invalid value for field 'pageToken'.", "invalid", "INVALID_ARGUMENT"
        ) from None


def _token_for(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode().rstrip("=")


TERM = r'([\w.-]+)\s*(=|!=|:)\s*("[^"]*"|[^\s()"]+)'


def _select(instances: list[dict[str, Any]], expression: str) -> list[dict[str, Any]]:
    """Apply a filter of the forms the real API takes: `labels.KEY = "VALUE"`, `status != X`,
    `labels.KEY:*`, joined by AND or spaces. Anything else is refused, as the API does."""
    if re.sub(TERM + r"|\bAND\b|[()\s]", "", expression):
        raise google_error(
            400,
            f"Invalid value for field 'filter': '{expression}'. Invalid list filter expression.",
            "invalid",
            "INVALID_ARGUMENT",
        )
    selected = instances
    for field, op, quoted in re.findall(TERM, expression):
        value = quoted.strip('"')

        def get(item: dict[str, Any], field: str = field) -> Any:
            if field.startswith("labels."):
                return item.get("labels", {}).get(field.removeprefix("labels."))
            return item.get(field)

        if op == "=":
            selected = [item for item in selected if get(item) == value]
        elif op == "!=":
            selected = [item for item in selected if get(item) != value]
        else:
            selected = [item for item in selected if get(item) is not None]
    return selected
