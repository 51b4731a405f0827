"""Object stores on the workstation: s3:// with boto3, gs:// with google-cloud-storage.

`fetch` downloads an object to a local file and `publish` uploads one. Both stream (no whole
object in memory); a download goes to a temporary name beside its destination and is renamed only
once complete and checked by the client (lengths, checksums), so a destination never holds a
partial file.

Credentials come from each SDK's own chain and are never written, shown or logged by pwrun:
- S3: boto3's chain (AWS_PROFILE, AWS_ACCESS_KEY_ID..., shared files, SSO, instance role).
  boto3 itself honours AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 (another S3 server) and
  AWS_CA_BUNDLE.
- GCS: application default credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC file, the
  metadata server). PWRUN_GCS_ENDPOINT names another JSON API endpoint, used with those
  credentials; STORAGE_EMULATOR_HOST, honoured by the client itself, is one without auth.

Every failure is an ObjectStoreError: one line naming the URL and the cause.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from pwrun.errors import ObjectStoreError, first_line
from pwrun.state import replacing

TIMEOUT = 60.0  # seconds: the wait for one answer, and (GCS) for retries of a failed request
GCS_ENDPOINT_ENV = "PWRUN_GCS_ENDPOINT"
GCS_CHUNK = 8 * 1024 * 1024  # resumable upload chunk (a multiple of 256 KiB); larger is multipart
NO_AWS_CREDENTIALS = (
    "no AWS credentials found (environment, AWS_PROFILE, shared credentials file, SSO, "
    "instance role)"
)
NO_GOOGLE_CREDENTIALS = (
    "no Google credentials (set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, "
    "or run 'gcloud auth application-default login')"
)


@dataclass(frozen=True)
class ObjectUrl:
    """`scheme://bucket/key`, with the key kept verbatim ('?' and '#' are part of it)."""

    scheme: str
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}"


def is_object_url(url: str) -> bool:
    """Whether `url` names an object in a store this module handles (s3:// or gs://)."""
    scheme, sep, _ = url.partition("://")
    return bool(sep) and scheme in STORES


def parse(url: str) -> ObjectUrl:
    """The parts of an s3:// or gs:// URL; ObjectStoreError when it is not one."""
    scheme, sep, rest = url.partition("://")
    bucket, _, key = rest.partition("/")
    if not sep or scheme not in STORES or not bucket or not key or key.endswith("/"):
        raise ObjectStoreError(
            url, "not an object URL: expected s3://BUCKET/KEY or gs://BUCKET/OBJECT"
        )
    return ObjectUrl(scheme, bucket, key)


def fetch(url: str, into: Path, *, timeout: float = TIMEOUT) -> Path:
    """Download `url` to the file `into` (into/<last part of the key> when `into` is a
    directory), replacing it whole; the file's path. The file is private to the user (0600)."""
    where = parse(url)
    target = into / PurePosixPath(where.key).name if into.is_dir() else into
    download, _ = STORES[where.scheme]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with replacing(target) as out:
            download(where, out, timeout)
    except OSError as exc:
        raise ObjectStoreError(url, f"cannot write {target}: {_other_cause(exc)}") from None
    return target


def publish(path: Path, url: str, *, timeout: float = TIMEOUT) -> None:
    """Upload the file `path` to `url`, replacing the object there."""
    where = parse(url)
    if not path.is_file():
        raise ObjectStoreError(url, f"cannot upload {path}: no such file")
    _, upload = STORES[where.scheme]
    upload(path, where, timeout)


@contextlib.contextmanager
def _reported(where: ObjectUrl, action: str, cause: Callable[[Exception], str]) -> Iterator[None]:
    """Any failure in the block as one ObjectStoreError line: `URL: ACTION: CAUSE`."""
    try:
        yield
    except Exception as exc:
        raise ObjectStoreError(str(where), f"{action}: {cause(exc)}") from None


def _other_cause(exc: BaseException) -> str:
    """An error no store explains better: an OSError's own words, else its first line."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return first_line(exc)


# --- S3 ----------------------------------------------------------------------------------------


def _s3_client(timeout: float) -> Any:
    import boto3  # SDKs are imported here: most runs move no objects
    import botocore.config

    config = botocore.config.Config(
        connect_timeout=timeout, read_timeout=timeout, retries={"mode": "standard"}
    )
    return boto3.session.Session().client("s3", config=config)


def _s3_cause(exc: Exception, where: ObjectUrl, timeout: float) -> str:
    """What went wrong, from what boto3 raised; a bare 404 (a HEAD's) is told apart by asking
    for the bucket."""
    import boto3.exceptions
    import botocore.exceptions
    import s3transfer.exceptions

    if isinstance(exc, boto3.exceptions.S3UploadFailedError):  # a ClientError, rewrapped
        exc = exc.__context__ if isinstance(exc.__context__, Exception) else exc
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return NO_AWS_CREDENTIALS
    if isinstance(exc, s3transfer.exceptions.RetriesExceededError):
        return f"connection lost mid-transfer, also on retrying: {first_line(exc.last_exception)}"
    if not isinstance(exc, botocore.exceptions.ClientError):
        return _other_cause(exc)
    error = exc.response.get("Error", {})
    code, message = str(error.get("Code", "")), str(error.get("Message", ""))
    if code == "NoSuchBucket" or (code == "404" and not _s3_bucket_exists(where, timeout)):
        return f"no such bucket {where.bucket!r}"
    if code in ("NoSuchKey", "404"):
        return f"no such key {where.key!r} in bucket {where.bucket!r}"
    if code in ("AccessDenied", "403"):
        return "access denied (403): these credentials may not use it, or it may not exist"
    return f"{code}: {message}".rstrip(": ")


def _s3_bucket_exists(where: ObjectUrl, timeout: float) -> bool:
    import botocore.exceptions

    try:
        _s3_client(timeout).head_bucket(Bucket=where.bucket)
    except botocore.exceptions.ClientError as exc:
        return str(exc.response.get("Error", {}).get("Code")) not in ("404", "NoSuchBucket")
    except botocore.exceptions.BotoCoreError:
        pass  # not known: say "no such key"
    return True


def _s3_download(where: ObjectUrl, out: BinaryIO, timeout: float) -> None:
    with _reported(where, "cannot download", lambda exc: _s3_cause(exc, where, timeout)):
        _s3_client(timeout).download_fileobj(where.bucket, where.key, out)


def _s3_upload(path: Path, where: ObjectUrl, timeout: float) -> None:
    with _reported(where, f"cannot upload {path}", lambda exc: _s3_cause(exc, where, timeout)):
        _s3_client(timeout).upload_file(str(path), where.bucket, where.key)


# --- GCS ---------------------------------------------------------------------------------------


def _gcs_blob(where: ObjectUrl, chunk_size: int | None = None) -> Any:
    """The object's blob; downloads without a chunk size are one stream, checksum-verified."""
    from google.cloud import storage

    endpoint = os.environ.get(GCS_ENDPOINT_ENV)
    client = storage.Client(
        project=None,  # none is needed to read or write an object: none is looked up
        client_options={"api_endpoint": endpoint} if endpoint else None,
    )
    return client.bucket(where.bucket).blob(where.key, chunk_size=chunk_size)


def _gcs_retry(timeout: float) -> Any:
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_timeout(timeout)


def _gcs_cause(exc: BaseException, timeout: float) -> str:
    """What went wrong, from what google-cloud-storage raised."""
    import google.auth.exceptions
    import requests
    from google.api_core import exceptions as api_exceptions
    from google.cloud.storage import exceptions as storage_exceptions

    if isinstance(exc, google.auth.exceptions.DefaultCredentialsError):
        return NO_GOOGLE_CREDENTIALS
    if isinstance(exc, google.auth.exceptions.GoogleAuthError):
        return f"authentication failed: {first_line(exc)}"
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        return f"{exc.code} {_google_message(exc)}"
    if isinstance(exc, api_exceptions.RetryError):
        last = _gcs_cause(exc.cause, timeout) if exc.cause else first_line(exc)
        return f"still failing after retrying for {timeout:g} s: {last}"
    if isinstance(exc, storage_exceptions.DataCorruption):
        return "the data arrived corrupted (checksum mismatch)"
    if isinstance(exc, storage_exceptions.InvalidResponse):
        return f"unexpected answer: {first_line(exc)}"
    if isinstance(exc, requests.ConnectionError) and "refused" in str(exc):
        endpoint = os.environ.get(GCS_ENDPOINT_ENV) or "storage.googleapis.com"
        return f"cannot reach {endpoint}: connection refused"
    return _other_cause(exc)


def _google_message(exc: Any) -> str:
    """The message of Google's JSON error answer, else the client's without "GET <url>: "."""
    try:
        return str(exc.response.json()["error"]["message"])
    except (AttributeError, ValueError, KeyError, TypeError):
        return re.sub(r"^[A-Z]+ \S+: ", "", exc.message or "").partition("\n")[0]


def _gcs_download(where: ObjectUrl, out: BinaryIO, timeout: float) -> None:
    with _reported(where, "cannot download", lambda exc: _gcs_cause(exc, timeout)):
        _gcs_blob(where).download_to_file(out, retry=_gcs_retry(timeout), timeout=timeout)


def _gcs_upload(path: Path, where: ObjectUrl, timeout: float) -> None:
    with _reported(where, f"cannot upload {path}", lambda exc: _gcs_cause(exc, timeout)):
        _gcs_blob(where, GCS_CHUNK).upload_from_filename(
            str(path), retry=_gcs_retry(timeout), timeout=timeout
        )


Download = Callable[[ObjectUrl, BinaryIO, float], None]
Upload = Callable[[Path, ObjectUrl, float], None]
STORES: dict[str, tuple[Download, Upload]] = {
    "s3": (_s3_download, _s3_upload),
    "gs": (_gcs_download, _gcs_upload),
}
