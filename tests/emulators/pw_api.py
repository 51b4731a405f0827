"""A local Parallel Works API: a real HTTP server on 127.0.0.1 speaking the platform's wire format.

Serves three endpoint generations from one list of clusters:
    GET /api/clusters                        today's list (`current=True`): the SDK's
                                             GeneralCluster, built with the SDK's own model
    GET /api/ssh/host-keys?resource=pw://<user>/<name>   the SDK's SshHostKeys
    GET /api/auth/session                    today's {username, organization}
    POST /api/organizations/<org>/users/<user>/clusters/<name>/provision|resume|stop   (204)
    GET /api/compute/clusters                v3 list
    GET /api/compute/clusters/<ns>/<name>    v3 detail, with nodes
    POST|DELETE /api/compute/clusters/<ns>/<name>/sessions   v3 start / stop
    GET /api/resources                       legacy list (controller in state.masterNode)
    GET /api/resources/start?id=, /stop?id=  legacy start / stop
    GET /api/v2/auth/session                 {username, organization}
Every request must carry the key as PW's clients send it (Basic base64("<key>:") for pwt_ keys);
a key in the query string is refused and remembered in `key_in_url`.

Power state machine, the same for every generation: a cluster is `off` (`deployed` False until
its first start), `starting` for `start_delay` seconds after a start (for ever for the names in
`never_up`), then `on` with its controller address (`_ip`); a stop makes it `off` at once. Each
generation shows the states its own way (today's: off/provisioning/resuming/active/stopped; v3:
status on with currentSessionStatus starting, then running; legacy: off until on). Knobs:
`start_fails` ({name: (status, message)}: the start is refused so), `wait_error` ((status,
message): every list answered so while a cluster is starting), `actions` (what was asked, in
order: (method, path)).

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
from urllib.parse import parse_qs, unquote, urlsplit

from parallelworks_client.models.general_cluster import GeneralCluster
from parallelworks_client.models.general_cluster_csp import GeneralClusterCsp
from parallelworks_client.models.general_cluster_status import GeneralClusterStatus
from parallelworks_client.models.general_cluster_type import GeneralClusterType
from parallelworks_client.models.ssh_host_keys import SshHostKeys
from parallelworks_client.models.ssh_host_keys_policy import SshHostKeysPolicy

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
    host_keys: list[str] | None = None,
    proxied: bool = False,
) -> dict[str, Any]:
    """One cluster as the platform stores it; `current_view`/`v3_view`/`legacy_view` render
    the answers. Keys starting with `_` are the emulator's own (the address a start brings up,
    host keys, the proxy flag, whether it was ever deployed)."""
    region = REGIONS.get(type)
    on = status == "on"
    return {
        "_ip": ip,
        "_host_keys": host_keys,
        "_proxied": proxied,
        "_deployed": on,
        "_phase": status,
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


CURRENT_TYPES = {
    "gclusterv2": GeneralClusterType.GOOGLE_SLURM,
    "pclusterv2": GeneralClusterType.AWS_SLURM,
    "azclusterv2": GeneralClusterType.AZURE_SLURM,
    "slurmshv2": GeneralClusterType.EXISTING,
}
CSP = {
    "gcp": GeneralClusterCsp.GOOGLE,
    "aws": GeneralClusterCsp.AWS,
    "azure": GeneralClusterCsp.AZURE,
}


def current_status(cluster: dict[str, Any]) -> GeneralClusterStatus:
    """Today's status of a power state."""
    phase, deployed = cluster.get("_phase", cluster.get("status")), cluster.get("_deployed")
    if phase == "on":
        return GeneralClusterStatus.ACTIVE
    if phase == "starting":
        return GeneralClusterStatus.RESUMING if deployed else GeneralClusterStatus.PROVISIONING
    return GeneralClusterStatus.STOPPED if deployed else GeneralClusterStatus.OFF


def current_view(cluster: dict[str, Any]) -> dict[str, Any]:
    """Today's /api/clusters item, made with the SDK's GeneralCluster model."""
    on = cluster.get("_phase", cluster.get("status")) == "on"
    ip = cluster.get("controllerIp") or "" if on else ""
    owner, user = cluster.get("namespace") or "", cluster.get("user")
    kind = CURRENT_TYPES.get(cluster.get("type", ""), GeneralClusterType.GOOGLE_SLURM)
    cloud = {"google-slurm": "gcp", "aws-slurm": "aws", "azure-slurm": "azure"}.get(kind.value)
    model = GeneralCluster(
        active_nodes=1 if on else 0,
        description=cluster.get("description"),
        display_name=cluster["name"],
        favorite=False,
        id=cluster.get("id", ""),
        ip_address=ip,
        max_nodes=4,
        name=cluster["name"],
        requested_nodes=0,
        should_platform_proxy=bool(cluster.get("_proxied")),
        status=current_status(cluster),
        tags=[t for t in str(cluster.get("tags") or "").split(",") if t],
        type_=kind,
        update_failed=False,
        user=owner,
        scheduler_type="slurm",
    )
    if on and ip and user:
        model.connection_string = f"{user}@{ip}"
    if cloud in CSP:
        model.csp = CSP[cloud]
        model.region = REGIONS.get(cluster.get("type", ""), "")
    if cluster.get("_host_keys") is not None and on:
        model.ssh_host_keys = cluster["_host_keys"]
    if cluster.get("_deployed"):
        model.latest_deployment_number = 1
    return model.to_dict()


def v3_view(cluster: dict[str, Any]) -> dict[str, Any]:
    """The v3 /api/compute/clusters item: user in variables.slurmUsername."""
    skipped = ("user", "tags", "description")
    view = {k: v for k, v in cluster.items() if k not in skipped and not k.startswith("_")}
    if cluster.get("_phase") == "starting":
        view.update(status="on", currentSessionStatus="starting", controllerIp=None)
    if "variables" in cluster:
        view["variables"] = dict(cluster["variables"], slurmUsername=cluster.get("user"))
    return _drop_none(view)


def legacy_view(cluster: dict[str, Any]) -> dict[str, Any]:
    """The legacy /api/resources item: controller in state.masterNode, user in settings."""
    on = cluster.get("status") == "on"
    view = {
        k: v
        for k, v in cluster.items()
        if k not in ("user", "controllerIp", "currentSessionStatus") and not k.startswith("_")
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

    def __init__(
        self,
        api_key: str = "pwt_emulator0123456789secret",
        username: str = "alice",
        *,
        current: bool = False,
    ):
        self.api_key = api_key
        self.username = username
        self.current = current  # serve today's /api/clusters (else 404, an older platform)
        self.start_delay = 0.0
        self.never_up: set[str] = set()
        self.start_fails: dict[str, tuple[int, str]] = {}
        self.wait_error: tuple[int, str] | None = None
        self.actions: list[tuple[str, str]] = []
        self.clusters: list[dict[str, Any]] = []
        # raw overrides: when set, served instead of rendering `clusters` (bytes: verbatim)
        self.v3_items: Any = None
        self.current_items: Any = None
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

    def find(self, **fields: str) -> dict[str, Any] | None:
        """The stored cluster whose fields have these values."""
        for cluster in self.clusters:
            if all(cluster.get(k) == v for k, v in fields.items()):
                return cluster
        return None

    def advance(self) -> None:
        """Move starting clusters whose delay passed to on (the state machine's clock)."""
        now = time.monotonic()
        for cluster in self.clusters:
            starting = cluster.get("_phase") == "starting"
            if starting and cluster["name"] not in self.never_up and now >= cluster["_ready_at"]:
                cluster.update(_phase="on", status="on", currentSessionStatus="running")
                cluster.update(controllerIp=cluster["_ip"], _deployed=True)

    def start(self, cluster: dict[str, Any], how: str = "") -> tuple[int, Any]:
        """Begin starting a cluster (`how`: today's provision or resume, which must fit)."""
        if cluster["name"] in self.start_fails:
            status, message = self.start_fails[cluster["name"]]
            return status, {"error": True, "message": message}
        if how == "resume" and not cluster.get("_deployed"):
            return 400, {"error": True, "message": "cluster was never provisioned"}
        if how == "provision" and cluster.get("_deployed"):
            return 409, {"error": True, "message": "cluster is already provisioned; resume it"}
        if cluster.get("_phase") in ("on", "starting"):
            return 409, {"error": True, "message": f"cluster is {cluster['_phase']}"}
        cluster.update(_phase="starting", _ready_at=time.monotonic() + self.start_delay)
        return 204, None

    def stop(self, cluster: dict[str, Any]) -> tuple[int, Any]:
        cluster.update(_phase="off", status="off", currentSessionStatus="off", controllerIp=None)
        return 204, None

    def act(self, method: str, path: str, query: dict[str, list[str]]) -> tuple[int, Any] | None:
        """A lifecycle request of any generation; None when `path` is none."""
        parts = [unquote(part) for part in path.split("/")]
        cluster = None
        if method == "POST" and len(parts) == 9 and parts[2] == "organizations":
            org, owner, name, how = parts[3], parts[5], parts[7], parts[8]
            if not self.current or org != "emulated" or how not in ("provision", "resume", "stop"):
                return 404, {"error": True, "message": "not found"}
            cluster = self.find(namespace=owner, name=name)
            if cluster is None:
                return 404, {"error": True, "message": f"no cluster {owner}/{name}"}
            return self.stop(cluster) if how == "stop" else self.start(cluster, how)
        if len(parts) == 7 and path.startswith("/api/compute/clusters/") and parts[6] == "sessions":
            cluster = self.find(namespace=parts[4], name=parts[5])
            if method not in ("POST", "DELETE") or cluster is None:
                return 404, {"message": "not found"}
            status, body = self.start(cluster) if method == "POST" else self.stop(cluster)
            return status, body or {}
        if method == "GET" and path in ("/api/resources/start", "/api/resources/stop"):
            cluster = self.find(id=(query.get("id") or [""])[0])
            if cluster is None:
                return 404, {"message": "no such resource"}
            status, body = self.start(cluster) if path.endswith("start") else self.stop(cluster)
            return status, body or {}
        return None

    def answer(self, path: str, method: str = "GET", query: str = "") -> tuple[int, Any]:
        """Status and JSON body for a request of `path` (authorization already checked)."""
        params = parse_qs(query)
        with self._lock:
            self.hits[path] += 1
            if self.fail_next:
                return self.fail_next.pop(0), {"message": "injected failure"}
            self.advance()
            acted = self.act(method, path, params)
            if acted is not None:
                self.actions.append((method, path))
                return acted
            starting = any(c.get("_phase") == "starting" for c in self.clusters)
        if method != "GET":
            return 404, {"message": "not found"}
        if self.wait_error and starting and path in ("/api/clusters", "/api/compute/clusters",
                                                     "/api/resources"):  # fmt: skip
            return self.wait_error[0], {"error": True, "message": self.wait_error[1]}
        if self.status is not None and not path.endswith("/auth/session"):
            return self.status, {"message": HTTPStatus(self.status).phrase}
        if path == "/api/v2/auth/session" or (path == "/api/auth/session" and self.current):
            return 200, {"username": self.username, "organization": "emulated"}
        if path == "/api/clusters" and self.current:
            items = self.current_items
            return 200, [current_view(c) for c in self.clusters] if items is None else items
        if path == "/api/ssh/host-keys" and self.current:
            owner, _, name = (
                (params.get("resource") or [""])[0].removeprefix("pw://").partition("/")
            )
            cluster = self.find(namespace=owner, name=name)
            if cluster is None:
                return 404, {"error": True, "message": "no such resource"}
            keys = SshHostKeys(
                host_keys=cluster.get("_host_keys"), policy=SshHostKeysPolicy.ENFORCE
            )
            return 200, keys.to_dict()
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

        def do_POST(self) -> None:
            self.do_GET("POST")

        def do_DELETE(self) -> None:
            self.do_GET("DELETE")

        def do_GET(self, method: str = "GET") -> None:
            started = time.monotonic()
            if int(self.headers.get("Content-Length") or 0):
                self.rfile.read(int(self.headers["Content-Length"]))
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
            status, body = api.answer(url.path.rstrip("/"), method, url.query)
            if body is None:
                data = b""
            else:
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
