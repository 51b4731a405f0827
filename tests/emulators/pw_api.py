"""A local Parallel Works API: a real HTTP server on 127.0.0.1 speaking the platform's wire format.

Serves both endpoint generations from one list of clusters:
    GET /api/compute/clusters                v3 list
    GET /api/compute/clusters/<ns>/<name>    v3 detail, with nodes
    GET /api/resources                       legacy list (controller in state.masterNode)
    GET /api/v2/auth/session                 {username, organization}
Every request must carry the key as PW's clients send it (Basic base64("<key>:") for pwt_ keys);
a key in the query string is refused and remembered in `key_in_url`.

Knobs (attributes, change them between requests): `fail_next` (statuses to answer with, one per
request, before answering normally), `status` (answer every list request with it), `delay`
(seconds before answering), `trickle` (seconds between the bytes of each answer, sent one at a
time; `hangups` records when a client hung up mid-answer), `malformed` (truncated JSON), `v3`
(False: v3 answers 404), `retry_after` (Retry-After header of injected 429s), `v3_items` /
`legacy_items` (served instead of `clusters`: JSON data, or bytes sent verbatim).
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
import zlib
from collections import Counter
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TYPES = ("gclusterv2", "pclusterv2", "azclusterv2", "slurmshv2")
REGIONS = {"gclusterv2": "us-central1", "pclusterv2": "us-east-1", "azclusterv2": "eastus"}


def pw_cluster(
    name: str,
    *,
    namespace: str = "alice",
    type: str = "gclusterv2",
    status: str = "on",
    ip: str | None = "34.171.136.114",
    user: str | None = "alice",
    private_ip: str | None = "10.128.0.2",
    workdir: str | None = "/home/alice/pw",
    partitions: tuple[str, ...] = ("compute", "gpu"),
    tags: str = "gcp,slurm,cpu",
    ident: str = "",
) -> dict[str, Any]:
    """One cluster as the platform stores it; `v3_view`/`legacy_view` render the two answers."""
    region = REGIONS.get(type)
    on = status == "on"
    return {
        "id": ident or f"{zlib.crc32(f'{namespace}/{name}'.encode()):024x}",
        "name": name,
        "namespace": namespace,
        "description": f"{name} ({type})",
        "tags": tags,
        "type": type,
        "status": status,
        "currentSessionStatus": "running" if on else "off",
        "controllerIp": ip if on else None,
        "user": user,
        "variables": {
            "workdir": workdir,
            "privateIp": private_ip,
            "region": region,
            "zone": f"{region}-a" if region else None,
            "partition_config": [
                {"name": p, "instance_type": "c2-standard-4", "max_node_num": 4} for p in partitions
            ],
        },
    }


def v3_view(cluster: dict[str, Any]) -> dict[str, Any]:
    """The v3 /api/compute/clusters item: user in variables.slurmUsername."""
    view = {k: v for k, v in cluster.items() if k not in ("user", "tags", "description")}
    if "variables" in cluster:
        view["variables"] = dict(cluster["variables"], slurmUsername=cluster.get("user"))
    return _drop_none(view)


def legacy_view(cluster: dict[str, Any]) -> dict[str, Any]:
    """The legacy /api/resources item: controller in state.masterNode, user in settings."""
    on = cluster.get("status") == "on"
    view = {
        k: v
        for k, v in cluster.items()
        if k not in ("user", "controllerIp", "currentSessionStatus")
    }
    if "controllerIp" in cluster:
        view["state"] = {
            "masterNode": cluster["controllerIp"] if on else None,
            "registeredWorkers": 0,
            "requestedWorkers": 0,
        }
    if "user" in cluster:
        view["settings"] = {"slurmUsername": cluster["user"], "jobschedulertype": "SLURM"}
    return _drop_none(view)


def _drop_none(data: Any) -> Any:
    """Absent rather than null, as the platform omits unset fields."""
    if isinstance(data, dict):
        return {k: _drop_none(v) for k, v in data.items() if v is not None}
    return data


class PwApiEmulator:
    """Start with `with PwApiEmulator() as api:`; `api.url` is http://127.0.0.1:<port>."""

    def __init__(self, api_key: str = "pwt_emulator0123456789secret", username: str = "alice"):
        self.api_key = api_key
        self.username = username
        self.clusters: list[dict[str, Any]] = []
        # raw overrides: when set, served instead of rendering `clusters` (bytes: verbatim)
        self.v3_items: Any = None
        self.legacy_items: Any = None
        self.fail_next: list[int] = []
        self.status: int | None = None
        self.retry_after: str | None = None
        self.delay = 0.0
        self.trickle = 0.0
        self.hangups: list[float] = []  # time.monotonic() of each client gone mid-answer
        self.malformed = False
        self.v3 = True
        self.hits: Counter[str] = Counter()
        self.unauthorized = 0
        self.key_in_url = False
        self.request_times: list[tuple[float, float]] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> PwApiEmulator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_generated(self, count: int, prefix: str = "pw") -> None:
        """`count` clusters spread over types and on/off states (for the bench)."""
        for i in range(count):
            kind = TYPES[i % len(TYPES)]
            on = i % 5 != 0
            self.clusters.append(
                pw_cluster(
                    f"{prefix}-{i:05d}",
                    type=kind,
                    status="on" if on else "off",
                    ip=f"198.51.{i // 250 % 256}.{i % 250 + 1}",
                    private_ip=f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
                    ident=f"{i:024x}",
                )
            )

    def authorized(self, header: str | None) -> bool:
        if self.api_key.startswith("pwt_"):
            expected = "Basic " + base64.b64encode(f"{self.api_key}:".encode()).decode()
        else:
            expected = f"Bearer {self.api_key}"
        return header == expected

    def answer(self, path: str) -> tuple[int, Any]:
        """Status and JSON body for a GET of `path` (authorization already checked)."""
        with self._lock:
            self.hits[path] += 1
            if self.fail_next:
                return self.fail_next.pop(0), {"message": "injected failure"}
        if self.status is not None and path != "/api/v2/auth/session":
            return self.status, {"message": HTTPStatus(self.status).phrase}
        if path == "/api/v2/auth/session":
            return 200, {"username": self.username, "organization": "emulated"}
        if path == "/api/resources":
            items = self.legacy_items
            return 200, [legacy_view(c) for c in self.clusters] if items is None else items
        if path == "/api/compute/clusters" and self.v3:
            items = self.v3_items
            return 200, [v3_view(c) for c in self.clusters] if items is None else items
        parts = path.split("/")
        if self.v3 and len(parts) == 6 and path.startswith("/api/compute/clusters/"):
            for cluster in self.clusters:
                if (cluster["namespace"], cluster["name"]) == (parts[4], parts[5]):
                    nodes = [{"name": f"{cluster['name']}-controller", "role": "controller"}]
                    return 200, dict(v3_view(cluster), nodes=nodes)
        return 404, {"message": "not found"}


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timeout test) closes its end: not worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler(api: PwApiEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            started = time.monotonic()
            url = urlsplit(self.path)
            if "key" in parse_qs(url.query):
                api.key_in_url = True
                self._send(400, b'{"message": "API keys do not belong in URLs"}')
                return
            if not api.authorized(self.headers.get("Authorization")):
                api.unauthorized += 1
                self._send(401, b'{"message": "Unauthorized"}')
                return
            if api.delay:
                time.sleep(api.delay)
            status, body = api.answer(url.path.rstrip("/"))
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            if api.malformed and status == 200:
                data = data[: max(1, len(data) // 2)]
            self._send(status, data)
            api.request_times.append((started, time.monotonic()))

        def _send(self, status: int, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 429 and api.retry_after:
                self.send_header("Retry-After", api.retry_after)
            self.end_headers()
            if not api.trickle:
                self.wfile.write(data)
                return
            try:
                for index in range(len(data)):
                    self.wfile.write(data[index : index + 1])
                    time.sleep(api.trickle)
            except ConnectionError:
                api.hangups.append(time.monotonic())
                raise

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
