"""Options of the `pw` source, and the platform host and API key they lead to."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from parallelworks_client import API_KEY_PREFIX, CredentialError, extract_platform_host
from pydantic import Field, model_validator

from pwrun.errors import SourceError
from pwrun.inventory.model import SourceOptions

KIND = "pw"
USER_TOKEN_PREFIX = "pwut_"
HOST_ENV = ("PW_PLATFORM_HOST", "PARSL_CLIENT_HOST")


class Options(SourceOptions):
    """`sources.pw` in the inventory file."""

    host: str | None = Field(
        default=None,
        description="Platform host, e.g. cloud.parallel.works; https unless the scheme says "
        "http://. Default: $PW_PLATFORM_HOST, else the host the credential names.",
    )
    api_key_env: str = Field(
        default="PW_API_KEY", description="Environment variable holding the API key."
    )
    api_key_file: Path = Field(
        default=Path("~/.ssh/pw_api.key"),
        description="File whose first line is the API key, used when the variable is unset; "
        "must be mode 0600.",
    )
    api: Literal["auto", "current", "v3", "legacy"] = Field(
        default="auto",
        description="Endpoint generation; auto tries current (/api/clusters), then v3, then "
        "legacy.",
    )
    proxy_jump: str | None = Field(
        default=None,
        description="ssh ProxyJump for clusters the platform says are reached through it "
        "(shouldPlatformProxy).",
    )
    proxy_command: str | None = Field(
        default=None,
        description="ssh ProxyCommand for those clusters (instead of proxy_jump).",
    )
    timeout: float = Field(default=15.0, gt=0, description="Seconds to wait for each answer.")
    retries: int = Field(default=3, ge=0, le=10, description="Retries on HTTP 429/5xx, errors.")
    backoff: float = Field(default=0.5, ge=0, description="First retry delay, doubled each time.")

    @model_validator(mode="after")
    def _one_proxy(self) -> Options:
        if self.proxy_jump and self.proxy_command:
            raise ValueError("give proxy_jump or proxy_command, not both")
        for value in (self.proxy_jump, self.proxy_command):
            if value is not None and (not value.strip() or not value.isprintable()):
                raise ValueError("a proxy setting is one line of printable text")
        return self

    def proxy_option(self) -> str | None:
        """The ssh `-o` option that reaches clusters through the platform, if one is set."""
        if self.proxy_jump:
            return f"ProxyJump={self.proxy_jump}"
        return f"ProxyCommand={self.proxy_command}" if self.proxy_command else None


def error(message: str) -> SourceError:
    """A failure of the `pw` source."""
    return SourceError(KIND, message)


def base_url(options: Options, key: str) -> str:
    """scheme://host[:port] from the options, the environment or else the credential (whose
    host the SDK decodes); https unless told http."""
    host = options.host or next(filter(None, map(os.environ.get, HOST_ENV)), None)
    if not host:
        host = credential_host(key)
    if not host:
        raise error(
            "no platform host: set PW_PLATFORM_HOST or sources.pw.host (the credential names none)"
        )
    url = host.strip() if "://" in host else f"https://{host.strip()}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise error(f"host: {host!r} is not a host name or an http(s) URL")
    if parts.username or parts.password or parts.query:
        raise error("host: put no credentials or query string in the host")
    return f"{parts.scheme}://{parts.netloc}"


def credential_host(key: str) -> str | None:
    """The platform host a credential names: pwt_ API keys and JWTs through the SDK; pwut_
    user tokens share the API keys' layout (`<prefix><base64 host>.<secret>`), which this SDK
    release does not know by that prefix. None when it names no host."""
    if key.startswith(USER_TOKEN_PREFIX):
        key = API_KEY_PREFIX + key.removeprefix(USER_TOKEN_PREFIX)
    try:
        host = extract_platform_host(key)
    except (CredentialError, UnicodeDecodeError):
        return None
    return host if host.isprintable() and host.strip() == host else None


def api_key(options: Options) -> str:
    """The key from `api_key_env`, else the first line of `api_key_file` (mode 0600)."""
    env = options.api_key_env
    if key := os.environ.get(env, "").strip():
        return key
    path = options.api_key_file.expanduser()
    try:
        mode = path.stat().st_mode
    except OSError:
        raise error(f"no API key: set {env} or write the key to {path} (mode 0600)") from None
    if stat.S_IMODE(mode) & 0o077:
        raise error(
            f"api_key_file {path} is readable by others (mode {stat.S_IMODE(mode):04o}); "
            f"run: chmod 600 {path}"
        )
    try:
        key = path.read_text().partition("\n")[0].strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"api_key_file {path}: cannot read it ({exc.__class__.__name__})") from None
    if not key:
        raise error(f"api_key_file {path} is empty")
    return key
