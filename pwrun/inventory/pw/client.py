"""HTTP for the `pw` source: GET JSON with the API key, retrying transient failures, within one
deadline; every failure is a SourceError that never quotes the key."""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import requests
import urllib3.exceptions
from parallelworks_client import is_api_key
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from pwrun.errors import first_line
from pwrun.inventory.model import deadline_passed
from pwrun.inventory.pw.options import Options, error

MAX_RETRY_AFTER = 30.0
MAX_ANSWER_BYTES = 64 * 2**20
CHUNK_BYTES = 2**16
MAX_ERROR_BYTES = 4096


class Retryable(Exception):
    """A transient failure (HTTP 429/5xx, connection error, timeout) worth another attempt."""

    def __init__(self, what: str, retry_after: float | None = None) -> None:
        super().__init__(what)
        self.retry_after = retry_after


class KeyAuth(requests.auth.AuthBase):
    """Sets the Authorization header (and keeps ~/.netrc from replacing it): Basic for API
    keys, Bearer for every other credential (user tokens, JWTs), as the SDK's clients send it."""

    def __init__(self, key: str) -> None:
        if is_api_key(key):
            self._header = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
        else:
            self._header = f"Bearer {key}"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._header
        return request

    def __repr__(self) -> str:
        return "KeyAuth(<hidden>)"


class PwClient:
    """A session with one platform; every GET, retry and read ends by the options' deadline,
    counted from the client's creation."""

    def __init__(self, options: Options, base_url: str, api_key: str) -> None:
        self.options = options
        self.base_url = base_url
        self._until = time.monotonic() + options.deadline
        self._session = requests.Session()
        self._session.auth = KeyAuth(api_key)
        self._session.headers["Accept"] = "application/json"

    def __enter__(self) -> PwClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._session.close()

    def get(self, path: str, *, missing_ok: bool = False, query: str = "") -> Any:
        """GET base_url+path as JSON, retrying transient failures; None for a 404 when
        missing_ok."""
        return self.request("GET", path, missing_ok=missing_ok, query=query)

    def request(self, method: str, path: str, *, missing_ok: bool = False, query: str = "") -> Any:
        """`method` base_url+path (plus `?query`: never a secret), its JSON answer (None when
        empty, or for a 404 when missing_ok); transient failures retried."""
        where = f"{method} {self.base_url}{path}"
        retrying = Retrying(
            stop=stop_after_attempt(self.options.retries + 1),
            wait=self._wait,
            retry=retry_if_exception_type(Retryable),
            reraise=True,
        )
        try:
            url = self.base_url + path + (f"?{query}" if query else "")
            status, reason, body = retrying(self._once, method, url, where)
        except Retryable as exc:
            attempts = self.options.retries + 1
            raise error(f"{exc} (gave up after {attempts} attempts)") from None
        if status == 404 and missing_ok:
            return None
        if status == 401:
            raise error(
                f"{where}: HTTP 401, the platform rejected the API key; check "
                f"{self.options.api_key_env} or {self.options.api_key_file}"
            )
        said = _message(body)
        if status == 403:
            raise error(f"{where}: HTTP 403, the API key may not do this{said}")
        if not 200 <= status < 300:
            raise error(f"{where}: HTTP {status} {reason}{said}")
        if not body.strip():
            return None
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise error(f"{where}: the answer is not valid JSON ({first_line(exc)})") from None

    def _once(self, method: str, url: str, where: str) -> tuple[int, str, bytes]:
        """One request: status, reason and the body, all within the deadline."""
        timeout = min(self.options.timeout, self._remaining(where))
        with (
            self._transport_errors(where),
            self._session.request(
                method, url, timeout=timeout, allow_redirects=False, stream=True
            ) as response,
        ):
            status, reason = response.status_code, _printable(response.reason or "")
            if status == 429 or status >= 500:
                retry_after = _retry_after(response.headers.get("Retry-After"))
                raise Retryable(f"{where}: HTTP {status} {reason}", retry_after)
            return status, reason, self._read(response, where)

    @contextlib.contextmanager
    def _transport_errors(self, where: str) -> Iterator[None]:
        """requests' and urllib3's exceptions as Retryable failures that name `where`."""
        try:
            yield
        except (requests.Timeout, urllib3.exceptions.ReadTimeoutError):
            self._remaining(where)  # the deadline, not the timeout, cut it short
            raise Retryable(f"{where}: no answer within {self.options.timeout:g} s") from None
        except requests.ConnectionError as exc:
            raise Retryable(f"{where}: cannot connect ({_reason(exc)})") from None
        except urllib3.exceptions.HTTPError as exc:
            raise Retryable(f"{where}: the answer broke off ({_reason(exc)})") from None

    def _read(self, response: requests.Response, where: str) -> bytes:
        """The body as it arrives, checking the deadline between reads: a server that trickles
        bytes keeps no socket open past it."""
        body = bytearray()
        while chunk := response.raw.read1(CHUNK_BYTES):
            body += chunk
            if len(body) > MAX_ANSWER_BYTES:
                raise error(f"{where}: the answer is over {MAX_ANSWER_BYTES >> 20} MiB")
            self._remaining(where)
        return bytes(body)

    def _remaining(self, where: str) -> float:
        """Seconds left before the deadline; past it, the SourceError that says so."""
        left = self._until - time.monotonic()
        if left <= 0:
            raise error(f"{where}: {deadline_passed(self.options.deadline)}")
        return left

    def _wait(self, state: RetryCallState) -> float:
        """Exponential backoff, or the server's Retry-After when it gives one; never past the
        deadline (the next attempt then reports it)."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Retryable) and exc.retry_after is not None:
            wait = exc.retry_after
        else:
            wait = wait_exponential(multiplier=self.options.backoff, max=MAX_RETRY_AFTER)(state)
        return max(0.0, min(wait, self._until - time.monotonic()))


def _printable(text: str, limit: int = 80) -> str:
    """A server-given phrase fit for a one-line message."""
    return "".join(char for char in text[:limit] if char.isprintable())


def _message(body: bytes) -> str:
    """`: <message>` from an error answer's JSON (`{"message": ...}`, the platform's Error
    model), shortened to one printable line; "" when there is none."""
    try:
        data = json.loads(body[:MAX_ERROR_BYTES])
    except (ValueError, RecursionError):
        return ""
    message = data.get("message") if isinstance(data, dict) else None
    return f": {_printable(message, 200)}" if isinstance(message, str) and message else ""


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
