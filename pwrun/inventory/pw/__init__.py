"""Parallel Works source: clusters from the platform's REST API.

Lists `GET /api/compute/clusters` (v3) and falls back to the legacy `GET /api/resources` when the
platform has no v3 endpoint. The API key travels only in the Authorization header; it never
appears in a URL, a message, a log line or the raw results (which Ansible may cache).

- `options`: the `sources.pw` options, and the host and API key they lead to
- `client`: HTTP: auth header, retries, the deadline, JSON; HTTP failures as SourceErrors
- `records`: the API's cluster records and the Cluster each one becomes
- `source`: `PwSource`, which endpoints to ask (fetch) and records to clusters (parse)
"""

from pwrun.inventory.pw.options import Options
from pwrun.inventory.pw.source import PwSource

__all__ = ["Options", "PwSource"]
