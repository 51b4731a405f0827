"""`PwSource`: which endpoints to ask (fetch), and the clusters of their records (parse)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from pwrun.errors import shown
from pwrun.inventory.model import Cluster, Parsed, Source
from pwrun.inventory.pw import records
from pwrun.inventory.pw.client import PwClient
from pwrun.inventory.pw.options import KIND, Options, api_key, base_url, error

# Each generation's list endpoint, newest first (the order `auto` tries them in).
LISTS = {"current": "/api/clusters", "v3": "/api/compute/clusters", "legacy": "/api/resources"}
SESSIONS = {"current": "/api/auth/session", "v3": "/api/v2/auth/session"}
HOST_KEYS = "/api/ssh/host-keys"


def session_path(api: str) -> str:
    """Where a generation says who the user is (username, organization)."""
    return SESSIONS.get(api, SESSIONS["v3"])


def host_keys_query(owner: str, name: str) -> str:
    """The query naming a cluster to /api/ssh/host-keys."""
    return urlencode({"resource": f"pw://{owner}/{name}"})


class PwSource(Source[Options]):
    """Cluster controllers the user can see on a Parallel Works platform."""

    kind = KIND

    def client(self) -> PwClient:
        """A client of the configured platform (the host may come from the credential)."""
        key = api_key(self.options)
        return PwClient(self.options, base_url(self.options, key), key)

    def fetch(self) -> dict[str, Any]:
        """`{"api": generation, "clusters": [...], "username": str|None, "host_keys": {name:
        [...]}}`: no secrets."""
        with self.client() as client:
            return self.fetch_with(client)

    def fetch_with(self, client: PwClient) -> dict[str, Any]:
        """`fetch` through an open client."""
        wanted = self.options.api
        tried = [api for api in LISTS if wanted in ("auto", api)]
        clusters, api = None, tried[-1]
        for api in tried:
            clusters = client.get(LISTS[api], missing_ok=api != tried[-1])
            if clusters is not None:
                break
        if not isinstance(clusters, list):
            raise error(f"{client.base_url}{LISTS[api]}: expected a list of clusters")
        named = records.names_current_user if api == "current" else records.names_user
        username = None
        if any(isinstance(c, dict) and not named(c) for c in clusters):
            session = client.get(session_path(api))
            if isinstance(session, dict) and isinstance(session.get("username"), str):
                username = session["username"]
        host_keys = self._host_keys(client, clusters) if api == "current" else {}
        return {"api": api, "clusters": clusters, "username": username, "host_keys": host_keys}

    def _host_keys(self, client: PwClient, clusters: list[Any]) -> dict[str, Any]:
        """/api/ssh/host-keys of each cluster that is on and lists no sshHostKeys."""
        found = {}
        for item in clusters:
            if not (isinstance(item, dict) and records.wants_host_keys(item)):
                continue
            answer = client.get(HOST_KEYS, query=host_keys_query(item["user"], item["name"]))
            if isinstance(answer, dict) and isinstance(answer.get("hostKeys"), list):
                found[item["name"]] = answer["hostKeys"]
        return found

    def parse(self, raw: Any) -> Parsed:
        if not isinstance(raw, dict) or not isinstance(raw.get("clusters"), list):
            raise error("raw results are not in the expected shape; flush the cache")
        api = str(raw["api"]) if raw.get("api") in LISTS else "v3"
        path = LISTS[api]
        username = raw.get("username")
        host_keys = raw["host_keys"] if isinstance(raw.get("host_keys"), dict) else {}
        proxy = self.options.proxy_option()
        parsed = Parsed(KIND)
        for index, item in enumerate(raw["clusters"]):
            where = f"{path} {_label(index, item)}"
            build: Callable[[], Cluster]
            if api == "current":
                name = item.get("name") if isinstance(item, dict) else None
                keys = host_keys.get(name) if isinstance(name, str) else None
                build = functools.partial(
                    records.current_cluster, item, username, proxy, records.key_lines(keys)
                )
            else:
                build = functools.partial(records.cluster, item, username)
            cluster = parsed.add(where, functools.partial(_with_api, build, api))
            if cluster and cluster.needs_proxy and not cluster.proxy:
                parsed.note(
                    where,
                    "the platform proxies ssh to it (shouldPlatformProxy): set "
                    "sources.pw.proxy_jump or sources.pw.proxy_command to reach it",
                )
            private_ip = (item.get("variables") or {}).get("privateIp") if cluster else None
            if cluster and private_ip and not cluster.private_address:
                parsed.note(
                    where,
                    f"variables.privateIp {shown(private_ip)} is not an IP address, left out: "
                    "Parsl workers will be given the cluster's public address",
                )
        return parsed


def _with_api(build: Callable[[], Cluster], api: str) -> Cluster:
    return build().model_copy(update={"api": api})


def _label(index: int, item: Any) -> str:
    name = item.get("name") if isinstance(item, dict) else None
    return f"cluster #{index}" + (f" ({shown(name)})" if isinstance(name, str) and name else "")
