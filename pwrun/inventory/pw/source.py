"""`PwSource`: which endpoints to ask (fetch), and the clusters of their records (parse)."""

from __future__ import annotations

import functools
from typing import Any

from pwrun.errors import shown
from pwrun.inventory.model import Parsed, Source
from pwrun.inventory.pw import records
from pwrun.inventory.pw.client import PwClient
from pwrun.inventory.pw.options import KIND, Options, api_key, base_url, error

V3_CLUSTERS = "/api/compute/clusters"
LEGACY_RESOURCES = "/api/resources"
SESSION = "/api/v2/auth/session"


class PwSource(Source[Options]):
    """Cluster controllers the user can see on a Parallel Works platform."""

    kind = KIND

    def fetch(self) -> dict[str, Any]:
        """`{"api": "v3"|"legacy", "clusters": [...], "username": str|None}`: no secrets."""
        base = base_url(self.options)
        with PwClient(self.options, base, api_key(self.options)) as client:
            api = self.options.api
            clusters = None
            if api in ("auto", "v3"):
                clusters = client.get(V3_CLUSTERS, missing_ok=api == "auto")
                api = "v3"
            if clusters is None:
                api = "legacy"
                clusters = client.get(LEGACY_RESOURCES)
            if not isinstance(clusters, list):
                raise error(f"{base}{_path(api)}: expected a list of clusters")
            username = None
            if any(isinstance(c, dict) and not records.names_user(c) for c in clusters):
                session = client.get(SESSION)
                if isinstance(session, dict) and isinstance(session.get("username"), str):
                    username = session["username"]
        return {"api": api, "clusters": clusters, "username": username}

    def parse(self, raw: Any) -> Parsed:
        if not isinstance(raw, dict) or not isinstance(raw.get("clusters"), list):
            raise error("raw results are not in the expected shape; flush the cache")
        path = _path(raw.get("api", "v3"))
        username = raw.get("username")
        parsed = Parsed(KIND)
        for index, item in enumerate(raw["clusters"]):
            where = f"{path} {_label(index, item)}"
            cluster = parsed.add(where, functools.partial(records.cluster, item, username))
            private_ip = (item.get("variables") or {}).get("privateIp") if cluster else None
            if cluster and private_ip and not cluster.private_address:
                parsed.note(
                    where,
                    f"variables.privateIp {shown(private_ip)} is not an IP address, left out: "
                    "Parsl workers will be given the cluster's public address",
                )
        return parsed


def _path(api: str) -> str:
    return LEGACY_RESOURCES if api == "legacy" else V3_CLUSTERS


def _label(index: int, item: Any) -> str:
    name = item.get("name") if isinstance(item, dict) else None
    return f"cluster #{index}" + (f" ({shown(name)})" if isinstance(name, str) and name else "")
