"""s3:// and gs:// Files of tasks on a "site" through a real DataFlowKernel (the fake sites of
tests/unit/test_staging.py) against moto's S3 server and the GCS emulator: read and written on
the workstation, moved like files, every failure one line naming the URL, the site and the cause,
and no credential ever on the site."""

from __future__ import annotations

from pathlib import Path

import pytest
from parsl import File, python_app

from pwrun.errors import ObjectStoreError
from pwrun.transport.contents import TransferError
from tests.data.conftest import Store
from tests.unit.test_staging import forgets, transform, workstation

__all__ = ["workstation"]  # the fixture, used here


@pytest.fixture
def stores(
    s3_store: Store, gcs_store: Store, monkeypatch: pytest.MonkeyPatch
) -> tuple[Store, Store]:
    """Both stores at once, each client pointed at its emulator with granted credentials."""
    for name, value in (s3_store.env | gcs_store.env).items():
        monkeypatch.setenv(name, value)
    return s3_store, gcs_store


@python_app(executors=["b"])
def size_of(data: File) -> int:
    return len(Path(data.filepath).read_bytes())


def failure(future: object, kind: type[Exception], stores: tuple[Store, Store]) -> str:
    """The one-line message of the exception `future` fails with, holding no secret."""
    with pytest.raises(kind) as failed:
        future.result(timeout=60)  # type: ignore[attr-defined]
    message = str(failed.value)
    assert "\n" not in message
    for store in stores:
        assert not any(secret in message for secret in store.all_secrets())
    return message


def test_an_s3_input_becomes_a_gs_output_through_a_site(
    workstation: Path, stores: tuple[Store, Store]
) -> None:
    s3, gcs = stores
    s3.put("in/words.txt", b"from a bucket")
    first = transform(inputs=[File(s3.url("in/words.txt"))], outputs=[File(gcs.url("out/up.txt"))])
    assert first.outputs[0].result(timeout=60).url == gcs.url("out/up.txt")
    assert gcs.read("out/up.txt") == b"FROM A BUCKET"  # published before the DataFuture resolved
    assert "/site-a/run/files/inputs/" in first.result() and first.result().endswith("/words.txt")
    s3.put("in/words.txt", b"changed since")  # read once per run: the run's copy is used
    second = size_of(File(s3.url("in/words.txt")))
    assert second.result(timeout=60) == len(b"from a bucket")
    sites = workstation.parent
    on_sites = b"".join(p.read_bytes() for p in sites.glob("site-*/**/*") if p.is_file())
    assert b"FROM A BUCKET" in on_sites
    for store in stores:
        for secret in store.all_secrets():
            assert secret.encode() not in on_sites
    assert not list((sites / "objects").glob("out/**/*.txt"))  # published, then removed


def test_a_missing_key_fails_the_app_naming_url_and_site(
    workstation: Path, stores: tuple[Store, Store]
) -> None:
    url = stores[0].url("absent.txt")
    future = transform(inputs=[File(url)], outputs=[File("never.txt")])
    message = failure(future, ObjectStoreError, stores)
    assert (
        message
        == f"{url}: input for site-a: cannot download: no such key 'absent.txt' in bucket 'data'"
    )
    with pytest.raises(ObjectStoreError):
        future.outputs[0].result(timeout=60)


def test_no_credentials_fails_the_app(
    workstation: Path, stores: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    stores[1].put("here.txt", b"x")
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    url = stores[1].url("here.txt")
    message = failure(size_of(File(url)), ObjectStoreError, stores)
    assert message.startswith(f"{url}: input for site-b: cannot download: no Google credentials")


def test_an_output_that_cannot_be_published_fails_the_app(
    workstation: Path, stores: tuple[Store, Store]
) -> None:
    (workstation / "in.txt").write_text("local")
    for store in stores:
        url = store.url("out.txt", bucket="nowhere")
        future = transform(inputs=[File("in.txt")], outputs=[File(url)])
        message = failure(future, ObjectStoreError, stores)
        assert message.startswith(f"{url}: output from site-a: cannot upload ")
        assert message.endswith(
            ("no such bucket 'nowhere'", "The specified bucket does not exist.")
        )


def test_an_object_output_the_app_did_not_create_is_named_by_its_url(
    workstation: Path, stores: tuple[Store, Store]
) -> None:
    url = stores[0].url("never.txt")
    message = failure(forgets(outputs=[File(url)]), TransferError, stores)
    assert message.startswith(f"{url} (from site-a:") and "not on the site" in message
    assert stores[0].read("never.txt") is None
