"""Parallel Works source: clusters from the platform's REST API.

Lists `GET /api/compute/clusters` (v3) and falls back to the legacy `GET /api/resources` when the
platform has no v3 endpoint. The API key travels only in the Authorization header; it never
appears in a URL, a message, a log line or the raw results (which Ansible may cache).
"""

from __future__ import annotations

import base64
import functools
import json
import os
import stat
import time
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from pwrun.errors import SourceError, first_line, shown
from pwrun.inventory.model import (
    Cluster,
    Parsed,
    Scheduler,
    Source,
    SourceOptions,
    deadline_passed,
    validate,
)
from pwrun.validation import (
    Address,
    ClusterName,
    RemotePath,
    UserName,
    address,
    ip_address,
    user_name,
)

KIND = "pw"
V3_CLUSTERS = "/api/compute/clusters"
LEGACY_RESOURCES = "/api/resources"
SESSION = "/api/v2/auth/session"
HOST_ENV = ("PW_PLATFORM_HOST", "PARSL_CLIENT_HOST")
CLOUD_OF_TYPE = {
    "gclusterv2": "gcp",
    "google-slurm": "gcp",
    "pclusterv2": "aws",
    "aws-slurm": "aws",
    "azclusterv2": "azure",
    "azure-slurm": "azure",
    "openstack-slurm": "openstack",
    "slurmshv2": "onprem",
    "existing": "onprem",
}
MAX_RETRY_AFTER = 30.0
MAX_ANSWER_BYTES = 64 * 2**20
CHUNK_BYTES = 2**16


class Options(SourceOptions):
    """`sources.pw` in the inventory file."""

    host: str | None = Field(
        default=None,
        description="Platform host, e.g. cloud.parallel.works; https unless the scheme says "
        "http://. Default: $PW_PLATFORM_HOST.",
    )
    api_key_env: str = Field(
        default="PW_API_KEY", description="Environment variable holding the API key."
    )
    api_key_file: Path = Field(
        default=Path("~/.ssh/pw_api.key"),
        description="File whose first line is the API key, used when the variable is unset; "
        "must be mode 0600.",
    )
    api: Literal["auto", "v3", "legacy"] = Field(
        default="auto", description="Endpoint generation; auto tries v3, then legacy."
    )
    timeout: float = Field(default=15.0, gt=0, description="Seconds to wait for each answer.")
    retries: int = Field(default=3, ge=0, le=10, description="Retries on HTTP 429/5xx, errors.")
    backoff: float = Field(default=0.5, ge=0, description="First retry delay, doubled each time.")


class _Retryable(Exception):
    """A transient failure (HTTP 429/5xx, connection error, timeout) worth another attempt."""

    def __init__(self, what: str, retry_after: float | None = None) -> None:
        super().__init__(what)
        self.retry_after = retry_after


class _KeyAuth(requests.auth.AuthBase):
    """Sets the Authorization header (and keeps ~/.netrc from replacing it)."""

    def __init__(self, key: str) -> None:
        if key.startswith("pwut_") or key.count(".") == 2:  # user token or JWT
            self._header = f"Bearer {key}"
        else:  # pwt_ API key
            self._header = "Basic " + base64.b64encode(f"{key}:".encode()).decode()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._header
        return request

    def __repr__(self) -> str:
        return "_KeyAuth(<hidden>)"


class PwSource(Source[Options]):
    """Cluster controllers the user can see on a Parallel Works platform."""

    kind = KIND

    # ---- fetch -------------------------------------------------------------------------------

    def fetch(self) -> dict[str, Any]:
        """`{"api": "v3"|"legacy", "clusters": [...], "username": str|None}`: no secrets."""
        base = self.base_url()
        until = time.monotonic() + self.options.deadline
        with requests.Session() as session:
            session.auth = _KeyAuth(self._api_key())
            session.headers["Accept"] = "application/json"
            get = functools.partial(self._get, session, base, until=until)
            api = self.options.api
            clusters = None
            if api in ("auto", "v3"):
                clusters = get(V3_CLUSTERS, missing_ok=api == "auto")
                api = "v3"
            if clusters is None:
                api = "legacy"
                clusters = get(LEGACY_RESOURCES)
            if not isinstance(clusters, list):
                raise self._error(f"{base}{_path(api)}: expected a list of clusters")
            username = None
            if any(isinstance(c, dict) and not _record_user(c) for c in clusters):
                session_info = get(SESSION)
                if isinstance(session_info, dict) and isinstance(session_info.get("username"), str):
                    username = session_info["username"]
        return {"api": api, "clusters": clusters, "username": username}

    def base_url(self) -> str:
        """scheme://host[:port] from the options or the environment; https unless told http."""
        host = self.options.host or next(filter(None, map(os.environ.get, HOST_ENV)), None)
        if not host:
            raise self._error("no platform host: set PW_PLATFORM_HOST or sources.pw.host")
        url = host.strip() if "://" in host else f"https://{host.strip()}"
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self._error(f"host: {host!r} is not a host name or an http(s) URL")
        if parts.username or parts.password or parts.query:
            raise self._error("host: put no credentials or query string in the host")
        return f"{parts.scheme}://{parts.netloc}"

    def _api_key(self) -> str:
        env = self.options.api_key_env
        if key := os.environ.get(env, "").strip():
            return key
        path = self.options.api_key_file.expanduser()
        try:
            mode = path.stat().st_mode
        except OSError:
            raise self._error(
                f"no API key: set {env} or write the key to {path} (mode 0600)"
            ) from None
        if stat.S_IMODE(mode) & 0o077:
            raise self._error(
                f"api_key_file {path} is readable by others (mode {stat.S_IMODE(mode):04o}); "
                f"run: chmod 600 {path}"
            )
        try:
            key = path.read_text().partition("\n")[0].strip()
        except (OSError, UnicodeDecodeError) as exc:
            problem = exc.__class__.__name__
            raise self._error(f"api_key_file {path}: cannot read it ({problem})") from None
        if not key:
            raise self._error(f"api_key_file {path} is empty")
        return key

    def _get(
        self,
        session: requests.Session,
        base: str,
        path: str,
        *,
        until: float,
        missing_ok: bool = False,
    ) -> Any:
        """GET base+path as JSON, retrying transient failures until the deadline (`until`, on
        the monotonic clock); None for a 404 when missing_ok."""
        where = f"GET {base}{path}"
        retrying = Retrying(
            stop=stop_after_attempt(self.options.retries + 1),
            wait=functools.partial(self._wait, until=until),
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )
        try:
            status, reason, body = retrying(self._get_once, session, base + path, where, until)
        except _Retryable as exc:
            attempts = self.options.retries + 1
            raise self._error(f"{exc} (gave up after {attempts} attempts)") from None
        if status == 404 and missing_ok:
            return None
        if status == 401:
            raise self._error(
                f"{where}: HTTP 401, the platform rejected the API key; check "
                f"{self.options.api_key_env} or {self.options.api_key_file}"
            )
        if status == 403:
            raise self._error(f"{where}: HTTP 403, the API key may not list clusters")
        if not 200 <= status < 300:
            raise self._error(f"{where}: HTTP {status} {reason}")
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise self._error(
                f"{where}: the answer is not valid JSON ({first_line(exc)})"
            ) from None

    def _get_once(
        self, session: requests.Session, url: str, where: str, until: float
    ) -> tuple[int, str, bytes]:
        """One GET: status, reason and (for a 2xx) the body, all within the deadline."""
        timeout = min(self.options.timeout, self._remaining(where, until))
        try:
            with session.get(url, timeout=timeout, allow_redirects=False, stream=True) as response:
                status, reason = response.status_code, _printable(response.reason or "")
                if status == 429 or status >= 500:
                    retry_after = _retry_after(response.headers.get("Retry-After"))
                    raise _Retryable(f"{where}: HTTP {status} {reason}", retry_after)
                body = self._read(response, where, until) if 200 <= status < 300 else b""
        except (requests.Timeout, urllib3.exceptions.ReadTimeoutError):
            self._remaining(where, until)  # the deadline, not the timeout, cut it short
            raise _Retryable(f"{where}: no answer within {self.options.timeout:g} s") from None
        except requests.ConnectionError as exc:
            raise _Retryable(f"{where}: cannot connect ({_reason(exc)})") from None
        except urllib3.exceptions.HTTPError as exc:
            raise _Retryable(f"{where}: the answer broke off ({_reason(exc)})") from None
        return status, reason, body

    def _read(self, response: requests.Response, where: str, until: float) -> bytes:
        """The body as it arrives, checking the deadline between reads: a server that trickles
        bytes keeps no socket open past it."""
        body = bytearray()
        while chunk := response.raw.read1(CHUNK_BYTES):
            body += chunk
            if len(body) > MAX_ANSWER_BYTES:
                raise self._error(f"{where}: the answer is over {MAX_ANSWER_BYTES >> 20} MiB")
            self._remaining(where, until)
        return bytes(body)

    def _remaining(self, where: str, until: float) -> float:
        """Seconds left before the deadline; past it, the SourceError that says so."""
        left = until - time.monotonic()
        if left <= 0:
            raise self._error(f"{where}: {deadline_passed(self.options.deadline)}")
        return left

    def _wait(self, state: RetryCallState, until: float) -> float:
        """Exponential backoff, or the server's Retry-After when it gives one; never past the
        deadline (the next attempt then reports it)."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            wait = exc.retry_after
        else:
            wait = wait_exponential(multiplier=self.options.backoff, max=MAX_RETRY_AFTER)(state)
        return max(0.0, min(wait, until - time.monotonic()))

    # ---- parse -------------------------------------------------------------------------------

    def parse(self, raw: Any) -> Parsed:
        if not isinstance(raw, dict) or not isinstance(raw.get("clusters"), list):
            raise self._error("raw results are not in the expected shape; flush the cache")
        path = _path(raw.get("api", "v3"))
        username = raw.get("username")
        parsed = Parsed(KIND)
        for index, item in enumerate(raw["clusters"]):
            where = f"{path} {_label(index, item)}"
            cluster = parsed.add(where, functools.partial(_Record.cluster, item, username))
            private_ip = (item.get("variables") or {}).get("privateIp") if cluster else None
            if cluster and private_ip and not cluster.private_address:
                parsed.note(
                    where,
                    f"variables.privateIp {shown(private_ip)} is not an IP address, left out: "
                    "Parsl workers will be given the cluster's public address",
                )
        return parsed

    def _error(self, message: str) -> SourceError:
        return SourceError(self.kind, message)


# ---- API records ------------------------------------------------------------------------------


def _user_at_host(value: str) -> str:
    """state.masterNode: `host` or `user@host`."""
    user, _, host = value.rpartition("@")
    if user:
        user_name(user)
    address(host)
    return value


Blank = BeforeValidator(lambda value: None if value == "" else value)  # the API's "unset"
OptionalAddress = Annotated[Address | None, Blank]
OptionalUser = Annotated[UserName | None, Blank]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Partition(_Lenient):
    name: str


class _Variables(_Lenient):
    workdir: Annotated[RemotePath | None, Blank] = None
    privateIp: str | None = None  # an IP or an interface name
    slurmUsername: OptionalUser = None
    slurmLoginNode: OptionalAddress = None
    scheduler: str | None = None
    jobschedulertype: str | None = None
    region: str | None = None
    zone: str | None = None
    partitions: list[str | _Partition] | None = None
    partition_config: list[_Partition] | None = None


class _State(_Lenient):
    masterNode: Annotated[Annotated[str, AfterValidator(_user_at_host)] | None, Blank] = None


class _Settings(_Lenient):
    slurmUsername: OptionalUser = None


class _Record(_Lenient):
    """One cluster as either endpoint generation returns it; absent fields are None."""

    name: ClusterName
    namespace: str | None = None
    type: str | None = None
    status: str | None = None
    currentSessionStatus: str | None = None
    controllerIp: OptionalAddress = None
    tags: str | list[str] | dict[str, str] | None = None
    state: _State | None = None
    settings: _Settings | None = None
    variables: _Variables | None = None

    @classmethod
    def cluster(cls, item: Any, platform_user: str | None) -> Cluster:
        """The cluster of one raw record; RecordError or ValidationError name a bad field."""
        record: _Record = validate(cls, item)
        variables = record.variables or _Variables()
        master = (record.state.masterNode if record.state else None) or ""
        master_user, _, master_host = master.rpartition("@")
        address = record.controllerIp or master_host or variables.slurmLoginNode or None
        user = (
            (record.settings.slurmUsername if record.settings else None)
            or variables.slurmUsername
            or master_user
            or platform_user
        )
        on = record.status == "on" or record.currentSessionStatus == "running"
        return Cluster(
            name=record.name,
            source=KIND,
            public_address=address,
            private_address=_ip_or_none(variables.privateIp),
            user=user or None,
            status="on" if on else "off",
            scheduler=record._scheduler(variables),
            partitions=record._partitions(variables),
            work_dir=variables.workdir,
            cloud=CLOUD_OF_TYPE.get(record.type or ""),
            region=variables.region,
            zone=variables.zone,
            tags=record._tags(),
            namespace=record.namespace,
        )

    def _scheduler(self, variables: _Variables) -> Scheduler:
        declared = (variables.scheduler or variables.jobschedulertype or self.type or "").lower()
        if "pbs" in declared:
            return "pbs"
        return "none" if declared == "none" else "slurm"

    @staticmethod
    def _partitions(variables: _Variables) -> tuple[str, ...]:
        listed = variables.partition_config or variables.partitions or []
        return tuple(p if isinstance(p, str) else p.name for p in listed)

    def _tags(self) -> dict[str, str]:
        if isinstance(self.tags, dict):
            return self.tags
        names = self.tags.split(",") if isinstance(self.tags, str) else self.tags or []
        return {name.strip(): "" for name in names if name.strip()}


def _record_user(record: dict[str, Any]) -> bool:
    """Whether a raw record names its ssh user (else the platform user name is needed)."""
    settings, variables, state = (record.get(k) or {} for k in ("settings", "variables", "state"))
    return bool(
        (isinstance(settings, dict) and settings.get("slurmUsername"))
        or (isinstance(variables, dict) and variables.get("slurmUsername"))
        or (isinstance(state, dict) and "@" in str(state.get("masterNode") or ""))
    )


def _path(api: str) -> str:
    return LEGACY_RESOURCES if api == "legacy" else V3_CLUSTERS


def _label(index: int, item: Any) -> str:
    name = item.get("name") if isinstance(item, dict) else None
    return f"cluster #{index}" + (f" ({shown(name)})" if isinstance(name, str) and name else "")


def _ip_or_none(value: str | None) -> str | None:
    """variables.privateIp holds an IP or an interface name: keep only an IP."""
    try:
        return ip_address(value) if value else None
    except ValueError:
        return None


def _printable(text: str, limit: int = 80) -> str:
    """A server-given phrase fit for a one-line message."""
    return "".join(char for char in text[:limit] if char.isprintable())


def _retry_after(value: str | None) -> float | None:
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER) if value else None
    except ValueError:
        return None


def _reason(exc: BaseException) -> str:
    """The innermost cause's class name: short and free of anything the request carried."""
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    return exc.__class__.__name__
