"""Fixtures of the object store tests: moto's S3 server and the GCS emulator, each with a bucket
`data` that the test's credentials may use and an outsider's credentials that it does not grant.
`store` runs a test against each, its client pointed there through the environment only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.emulators.aws_s3 import S3Emulator
from tests.emulators.gcs import GcsEmulator

BUCKET = "data"
OUTSIDER = "outsider@pwrun-test.iam.gserviceaccount.com"


@dataclass
class Store:
    """One emulated store, as a test sees it."""

    scheme: str
    emulator: Any
    env: dict[str, str]  # what makes the client reach the emulator with granted credentials
    outsider: dict[str, str]  # credentials the bucket does not grant
    endpoint_var: str  # the variable naming the endpoint
    secrets: list[str] = field(default_factory=list)

    def url(self, key: str, bucket: str = BUCKET) -> str:
        return f"{self.scheme}://{bucket}/{key}"

    def put(self, key: str, data: bytes) -> None:
        if self.scheme == "s3":
            self.emulator.client("s3", "us-east-1").put_object(Bucket=BUCKET, Key=key, Body=data)
        else:
            self.emulator.put(BUCKET, key, data)

    def read(self, key: str) -> bytes | None:
        """The object's data; None when there is none."""
        if self.scheme == "gs":
            stored = self.emulator.buckets[BUCKET].get(key)
            return stored.data if stored else None
        s3 = self.emulator.client("s3", "us-east-1")
        try:
            return bytes(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        except s3.exceptions.NoSuchKey:
            return None

    def parts(self, key: str) -> int:
        """How many requests carried the object's data when it was uploaded."""
        if self.scheme == "gs":
            return int(self.emulator.buckets[BUCKET][key].requests)
        etag = self.emulator.client("s3", "us-east-1").head_object(Bucket=BUCKET, Key=key)["ETag"]
        return int(etag.strip('"').partition("-")[2] or 1)

    def all_secrets(self) -> list[str]:
        """Secret keys, and the access tokens the emulator has issued so far."""
        return self.secrets + list(getattr(self.emulator, "tokens", {}))


@pytest.fixture(scope="session")
def s3_store() -> Iterator[Store]:
    with S3Emulator() as emu:
        emu.client("s3", "us-east-1").create_bucket(Bucket=BUCKET)
        only_elsewhere = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "s3:*",
                    "Resource": ["arn:aws:s3:::elsewhere", "arn:aws:s3:::elsewhere/*"],
                }
            ],
        }
        outsider = emu.add_user("outsider", only_elsewhere)
        yield Store(
            scheme="s3",
            emulator=emu,
            env=emu.environment()
            | {"AWS_ENDPOINT_URL": emu.url, "AWS_DEFAULT_REGION": "us-east-1"},
            outsider={
                "AWS_ACCESS_KEY_ID": outsider["aws_access_key_id"],
                "AWS_SECRET_ACCESS_KEY": outsider["aws_secret_access_key"],
            },
            endpoint_var="AWS_ENDPOINT_URL",
            secrets=[
                emu.credentials["aws_secret_access_key"],
                outsider["aws_secret_access_key"],
            ],
        )


@pytest.fixture(scope="session")
def gcs_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    keys = tmp_path_factory.mktemp("gcs-keys")
    with GcsEmulator() as emu:
        emu.add_bucket(BUCKET)
        key_file = emu.service_account_file(keys)
        outsider_file = emu.service_account_file(keys, email=OUTSIDER)
        yield Store(
            scheme="gs",
            emulator=emu,
            env={"GOOGLE_APPLICATION_CREDENTIALS": str(key_file), "PWRUN_GCS_ENDPOINT": emu.url},
            outsider={"GOOGLE_APPLICATION_CREDENTIALS": str(outsider_file)},
            endpoint_var="PWRUN_GCS_ENDPOINT",
            secrets=[key_material(key_file), key_material(outsider_file)],
        )


def key_material(key_file: Path) -> str:
    """A line of the private key in a service-account file."""
    return str(json.loads(key_file.read_text())["private_key"].splitlines()[1])


@pytest.fixture(autouse=True)
def _isolated(no_ambient_credentials: None) -> None:
    """Every test here uses only the credentials it is given."""


@pytest.fixture(params=["s3", "gs"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Store:
    """Each store in turn, its client pointed at the emulator with granted credentials."""
    chosen: Store = request.getfixturevalue(f"{request.param.replace('gs', 'gcs')}_store")
    for name, value in chosen.env.items():
        monkeypatch.setenv(name, value)
    return chosen
