"""pwrun.data.objects against real clients and local servers: moto's S3 and the GCS emulator.

Every failure is one ObjectStoreError line naming the URL and the cause, with no credential in
it, and leaves the destination as it was: no partial file, no object half-made."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pwrun.data.objects import fetch, is_object_url, parse, publish
from pwrun.errors import ObjectStoreError
from tests.data.conftest import OUTSIDER, Store, key_material
from tests.emulators.cloud_http import closed_port_url
from tests.emulators.cutting_proxy import CuttingProxy

MiB = 1024 * 1024
OLD = b"the destination's previous content"


def failure(call: Callable[[], object], url: str, store: Store) -> str:
    """The ObjectStoreError `call` raises: one line starting with `url`, no chained traceback,
    no secret."""
    with pytest.raises(ObjectStoreError) as info:
        call()
    message = str(info.value)
    assert message.startswith(f"{url}: ") and "\n" not in message, message
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__
    for secret in store.all_secrets():
        assert secret not in message
    return message


def fetch_fails(store: Store, tmp_path: Path, url: str, timeout: float = 5) -> str:
    """Fetching `url` over an existing file fails and leaves it, alone and whole."""
    destination = tmp_path / "in" / "data.bin"
    destination.parent.mkdir()
    destination.write_bytes(OLD)
    message = failure(lambda: fetch(url, destination, timeout=timeout), url, store)
    assert os.listdir(destination.parent) == ["data.bin"]
    assert destination.read_bytes() == OLD
    return message


def publish_fails(store: Store, tmp_path: Path, url: str, timeout: float = 5) -> str:
    """Publishing a 10 MiB file to `url` fails and leaves no object there."""
    source = tmp_path / "out.bin"
    source.write_bytes(os.urandom(10 * MiB))
    message = failure(lambda: publish(source, url, timeout=timeout), url, store)
    if url.startswith(store.url("")):
        assert store.read(url.removeprefix(store.url(""))) is None
    return message


def use(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("size", [1000, 20 * MiB], ids=["1KB", "20MiB"])
def test_round_trip(store: Store, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    key = f"runs/{size}/data.bin"
    publish(source, store.url(key))
    assert store.read(key) == data
    assert store.parts(key) == (1 if size < 8 * MiB else 3)  # big files go in 8 MiB pieces
    copy = fetch(store.url(key), tmp_path / "back" / "copy.bin")
    assert copy == tmp_path / "back" / "copy.bin"
    assert hashlib.sha256(copy.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert os.listdir(copy.parent) == ["copy.bin"]


def test_fetch_into_a_directory_replaces_the_file_there(store: Store, tmp_path: Path) -> None:
    store.put("deep/path/table.csv", b"a,b\n1,2\n")
    (tmp_path / "table.csv").write_bytes(OLD)
    assert fetch(store.url("deep/path/table.csv"), tmp_path) == tmp_path / "table.csv"
    assert (tmp_path / "table.csv").read_bytes() == b"a,b\n1,2\n"
    assert os.listdir(tmp_path) == ["table.csv"]


def test_keys_are_kept_verbatim(store: Store, tmp_path: Path) -> None:
    key = "odd names/a?b#c.txt"  # not % or +: moto checks signatures of those wrongly
    source = tmp_path / "odd.txt"
    source.write_bytes(b"odd")
    publish(source, store.url(key))
    assert store.read(key) == b"odd"
    assert fetch(store.url(key), tmp_path / "copy").read_bytes() == b"odd"


# --- failures ----------------------------------------------------------------------------------


def test_no_such_bucket(store: Store, tmp_path: Path) -> None:
    expected = {"s3": "no such bucket 'nowhere'", "gs": "404 The specified bucket does not exist."}
    url = store.url("k.bin", bucket="nowhere")
    assert fetch_fails(store, tmp_path, url).endswith(f"cannot download: {expected[store.scheme]}")
    assert f"cannot upload {tmp_path}/out.bin: {expected[store.scheme]}" in publish_fails(
        store, tmp_path, url
    )


def test_no_such_key(store: Store, tmp_path: Path) -> None:
    expected = {"s3": "no such key 'missing.bin' in bucket 'data'", "gs": "404 No such object"}
    assert f"cannot download: {expected[store.scheme]}" in fetch_fails(
        store, tmp_path, store.url("missing.bin")
    )


def test_access_denied(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store.put("private.bin", b"private")
    use(monkeypatch, store.outsider)
    denied = {"s3": "access denied", "gs": f"403 {OUTSIDER} does not have storage.objects"}
    assert denied[store.scheme] in fetch_fails(store, tmp_path, store.url("private.bin"))
    assert denied[store.scheme] in publish_fails(store, tmp_path, store.url("new.bin"))


def test_no_credentials(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    store.put("k.bin", b"x")
    expected = {"s3": "no AWS credentials found", "gs": "no Google credentials"}
    assert expected[store.scheme] in fetch_fails(store, tmp_path, store.url("k.bin"))
    assert expected[store.scheme] in publish_fails(store, tmp_path, store.url("new.bin"))


def test_credentials_the_server_rejects(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong AWS secret, a key file GCS does not know: refused, and neither is repeated."""
    if store.scheme == "s3":
        wrong = "wrong-secret-0123456789abcdefghijklmnopqrstu"
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    else:
        key_file = store.emulator.service_account_file(tmp_path, trusted=False)
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
        wrong = key_material(key_file)
    store.put("k.bin", b"x")
    expected = {"s3": "SignatureDoesNotMatch", "gs": "authentication failed: ('invalid_grant"}
    refused = publish_fails(store, tmp_path, store.url("new.bin"))
    assert expected[store.scheme] in refused and wrong not in refused
    refused = fetch_fails(store, tmp_path, store.url("k.bin"))
    assert "cannot download" in refused and wrong not in refused


def test_server_unreachable(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    down = closed_port_url()
    monkeypatch.setenv(store.endpoint_var, down)
    expected = {
        "s3": f'Could not connect to the endpoint URL: "{down}/data/',
        "gs": f"still failing after retrying for 1 s: cannot reach {down}: connection refused",
    }
    assert expected[store.scheme] in fetch_fails(store, tmp_path, store.url("k.bin"), timeout=1)
    unsent = publish_fails(store, tmp_path, store.url("unsent.bin"), timeout=1)
    assert expected[store.scheme] in unsent


def test_download_cut_short(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every connection drops after 64 KiB: the client's retries cannot finish a 1 MiB object."""
    store.put("big.bin", os.urandom(MiB))
    expected = {
        "s3": "connection lost mid-transfer, also on retrying: ",
        "gs": "still failing after retrying for 1 s: ",
    }
    with CuttingProxy(store.emulator.url, limit=64 * 1024) as proxy:
        monkeypatch.setenv(store.endpoint_var, proxy.url)
        message = fetch_fails(store, tmp_path, store.url("big.bin"), timeout=1)
    assert proxy.cuts >= 1
    assert expected[store.scheme] in message and "IncompleteRead" in message, message


def test_corrupted_download(
    gcs_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GCS sends the object's checksums; data that does not match them is not kept."""
    use(monkeypatch, gcs_store.env)
    gcs_store.put("flipped.bin", os.urandom(MiB))
    gcs_store.emulator.corrupt = True
    try:
        message = fetch_fails(gcs_store, tmp_path, gcs_store.url("flipped.bin"))
    finally:
        gcs_store.emulator.corrupt = False
    assert message.endswith("cannot download: the data arrived corrupted (checksum mismatch)")


def test_missing_local_file(store: Store, tmp_path: Path) -> None:
    url = store.url("k.bin")
    message = failure(lambda: publish(tmp_path / "absent.bin", url), url, store)
    assert message == f"{url}: cannot upload {tmp_path}/absent.bin: no such file"


def test_unwritable_destination(store: Store, tmp_path: Path) -> None:
    store.put("k.bin", b"x")
    (tmp_path / "file").write_bytes(OLD)
    url = store.url("k.bin")
    message = failure(lambda: fetch(url, tmp_path / "file" / "below"), url, store)
    assert f"cannot write {tmp_path}/file/below: " in message


# --- URLs --------------------------------------------------------------------------------------


def test_object_urls() -> None:
    assert is_object_url("s3://b/k") and is_object_url("gs://b/dir/o")
    for other in ("file:///tmp/x", "/tmp/x", "s3", "https://b/k", "s3:/b/k"):
        assert not is_object_url(other)
    assert str(parse("gs://b/a/b?c#d")) == "gs://b/a/b?c#d"
    assert parse("gs://b/a/b?c#d").key == "a/b?c#d"
    for bad in ("s3://", "s3://bucket", "s3://bucket/", "gs:///key", "s3://b/dir/", "ftp://b/k"):
        with pytest.raises(ObjectStoreError, match="not an object URL"):
            parse(bad)
