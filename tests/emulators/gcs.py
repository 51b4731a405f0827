"""A local emulator of the Cloud Storage JSON API: the part google-cloud-storage uses to read and
write objects, with Google's OAuth (tests/emulators/google_api.py) and per-bucket access.

Served: object metadata (GET .../b/B/o/O), media downloads (`alt=media`, on /storage/v1 or
/download/storage/v1, with Range and the x-goog-hash header the client checks), and uploads:
`multipart` (small files) and `resumable` (a session URL, then chunks PUT with Content-Range,
308 until the last). Errors are Google's JSON errors: 401, 403 for a service account the bucket
does not grant, 404 for a missing bucket or object.

    with GcsEmulator() as emu:
        emu.add_bucket("data")                    # granted to SERVICE_ACCOUNT
        key_file = emu.service_account_file(tmp_dir)
        # the client: GOOGLE_APPLICATION_CREDENTIALS=key_file, api_endpoint emu.url
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import google_crc32c

from tests.emulators.cloud_http import Reply, Request
from tests.emulators.google_api import SERVICE_ACCOUNT, GoogleApi, google_error

BUCKET = r"/storage/v1/b/(?P<bucket>[^/]+)/o"
OBJECT = BUCKET + r"/(?P<object>[^/]+)"


@dataclass
class StoredObject:
    data: bytes
    generation: int
    content_type: str
    requests: int = 1  # that carried its data: chunks of a resumable upload


@dataclass
class Session:
    """A resumable upload in progress."""

    bucket: str
    name: str
    content_type: str
    data: bytearray = field(default_factory=bytearray)
    chunks: int = 0


class GcsEmulator(GoogleApi):
    """Buckets of objects in memory; `log` records each request's kind, for tests to check how
    the client went about a transfer ("metadata", "media", "range", "multipart", "resumable",
    "chunk")."""

    def __init__(self) -> None:
        super().__init__()
        self.buckets: dict[str, dict[str, StoredObject]] = {}
        self.grants: dict[str, set[str]] = {}  # bucket -> service accounts that may use it
        self.sessions: dict[str, Session] = {}
        self.log: list[str] = []
        self.corrupt = False  # media is served with a byte changed (the hashes of the original)
        self._generation = itertools.count(1_700_000_000_000_000)
        for prefix in ("", "/download"):
            self.server.route("GET", prefix + OBJECT, self._get)
        self.server.route("POST", "/upload" + BUCKET, self._upload)
        self.server.route("PUT", "/upload" + BUCKET, self._chunk)

    def add_bucket(self, name: str, *members: str) -> None:
        """A bucket that `members` (default: the default service account) may read and write."""
        self.buckets[name] = {}
        self.grants[name] = set(members or (SERVICE_ACCOUNT,))

    def put(self, bucket: str, name: str, data: bytes) -> None:
        self._store(bucket, name, data, "application/octet-stream")

    def _store(
        self, bucket: str, name: str, data: bytes, content_type: str, requests: int = 1
    ) -> StoredObject:
        stored = StoredObject(data, next(self._generation), content_type, requests)
        self.buckets[bucket][name] = stored
        return stored

    # --- access --------------------------------------------------------------------------------

    def _objects(self, request: Request, bucket: str, permission: str) -> dict[str, StoredObject]:
        """The objects of `bucket`, when the caller may use it."""
        who = self.identity(request)
        if bucket not in self.buckets:
            raise google_error(404, "The specified bucket does not exist.", "notFound", "NOT_FOUND")
        if who not in self.grants[bucket]:
            raise google_error(
                403,
                f"{who} does not have storage.objects.{permission} access to the Google Cloud "
                f"Storage object. Permission 'storage.objects.{permission}' denied on resource "
                "(or it may not exist).",
                "forbidden",
                "PERMISSION_DENIED",
            )
        return self.buckets[bucket]

    def _resource(self, bucket: str, name: str, stored: StoredObject) -> dict[str, Any]:
        path = f"b/{bucket}/o/{quote(name, safe='')}"
        return {
            "kind": "storage#object",
            "id": f"{bucket}/{name}/{stored.generation}",
            "selfLink": f"{self.url}/storage/v1/{path}",
            "mediaLink": f"{self.url}/download/storage/v1/{path}"
            f"?generation={stored.generation}&alt=media",
            "name": name,
            "bucket": bucket,
            "generation": str(stored.generation),
            "metageneration": "1",
            "contentType": stored.content_type,
            "storageClass": "STANDARD",
            "size": str(len(stored.data)),
            "md5Hash": _md5(stored.data),
            "crc32c": _crc32c(stored.data),
            "etag": f"CI{stored.generation % 10**6}EAE=",
            "timeCreated": "2026-01-01T00:00:00.000Z",
            "updated": "2026-01-01T00:00:00.000Z",
        }

    # --- reads ---------------------------------------------------------------------------------

    def _get(self, request: Request, match: re.Match[str]) -> Reply:
        bucket, name = match["bucket"], unquote(match["object"])
        stored = self._objects(request, bucket, "get").get(name)
        generation = request.query.get("generation")
        if stored is None or (generation and generation != str(stored.generation)):
            raise google_error(404, f"No such object: {bucket}/{name}", "notFound", "NOT_FOUND")
        if request.query.get("alt") != "media":
            self.log.append("metadata")
            return 200, self._resource(bucket, name, stored), {}
        headers = {
            "x-goog-hash": f"crc32c={_crc32c(stored.data)},md5={_md5(stored.data)}",
            "x-goog-generation": str(stored.generation),
            "x-goog-metageneration": "1",
            "x-goog-stored-content-length": str(len(stored.data)),
            "x-goog-stored-content-encoding": "identity",
        }
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", request.headers.get("range", ""))
        data = bytes([stored.data[0] ^ 1]) + stored.data[1:] if self.corrupt else stored.data
        if not wanted:
            self.log.append("media")
            return 200, data, headers
        self.log.append("range")
        total = len(stored.data)
        start, end = int(wanted[1]), min(int(wanted[2] or total - 1), total - 1)
        headers["Content-Range"] = f"bytes {start}-{end}/{total}"
        return 206, data[start : end + 1], headers

    # --- writes --------------------------------------------------------------------------------

    def _upload(self, request: Request, match: re.Match[str]) -> Reply:
        bucket = match["bucket"]
        self._objects(request, bucket, "create")
        kind = request.query.get("uploadType", "")
        self.log.append(kind)
        if kind == "multipart":
            metadata, data = _multipart(request)
            _check_hashes(metadata, data)
            stored = self._store(
                bucket,
                metadata["name"],
                data,
                metadata.get("contentType", "application/octet-stream"),
            )
            return 200, self._resource(bucket, metadata["name"], stored), {}
        if kind == "resumable":
            metadata = json.loads(request.body or b"{}")
            name = metadata.get("name") or request.query["name"]
            content_type = request.headers.get("x-upload-content-type", "application/octet-stream")
            upload_id = secrets.token_urlsafe(24)
            self.sessions[upload_id] = Session(bucket, name, content_type)
            location = f"{self.url}/upload/storage/v1/b/{bucket}/o"
            return 200, b"", {"Location": f"{location}?uploadType=resumable&upload_id={upload_id}"}
        raise google_error(400, f"Invalid upload type: {kind!r}", "invalid", "INVALID_ARGUMENT")

    def _chunk(self, request: Request, match: re.Match[str]) -> Reply:
        """One PUT of a resumable upload: `Content-Range: bytes FIRST-LAST/TOTAL` (TOTAL `*` while
        unknown), or `bytes */TOTAL` to finish or ask how far it got."""
        session = self.sessions.get(request.query.get("upload_id", ""))
        if session is None:
            raise google_error(404, "No such upload session.", "notFound", "NOT_FOUND")
        self.log.append("chunk")
        spec = re.fullmatch(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", request.headers["content-range"])
        if spec is None:
            raise google_error(400, "Invalid Content-Range.", "invalid", "INVALID_ARGUMENT")
        if spec[1] is not None and int(spec[1]) == len(session.data):
            session.data += request.body
            session.chunks += 1
        if spec[3] != "*" and len(session.data) == int(spec[3]):
            del self.sessions[request.query["upload_id"]]
            data = bytes(session.data)
            stored = self._store(
                session.bucket, session.name, data, session.content_type, session.chunks
            )
            return 200, self._resource(session.bucket, session.name, stored), {}
        done = {"Range": f"bytes=0-{len(session.data) - 1}"} if session.data else {}
        return 308, b"", done


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _crc32c(data: bytes) -> str:
    return base64.b64encode(struct.pack(">I", google_crc32c.value(data))).decode()


def _multipart(request: Request) -> tuple[dict[str, Any], bytes]:
    """The JSON metadata and the media of a multipart/related upload body."""
    boundary = re.search(r'boundary="?([^";]+)"?', request.headers.get("content-type", ""))
    if boundary is None:
        raise google_error(400, "Missing multipart boundary.", "invalid", "INVALID_ARGUMENT")
    parts = request.body.split(b"--" + boundary[1].encode())
    metadata, media = (part.partition(b"\r\n\r\n")[2][:-2] for part in parts[1:3])
    return json.loads(metadata), media


def _check_hashes(metadata: dict[str, Any], data: bytes) -> None:
    """The upload's own checksums, when it sent them, must match its data (as GCS checks)."""
    for key, actual in (("crc32c", _crc32c(data)), ("md5Hash", _md5(data))):
        if metadata.get(key, actual) != actual:
            raise google_error(
                400,
                f'Provided {key} "{metadata[key]}" doesn\'t match calculated {key} "{actual}".',
                "invalid",
                "INVALID_ARGUMENT",
            )
