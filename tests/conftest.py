"""Shared fixtures: the lab of simulated Slurm sites (root only); no ambient cloud credentials."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pwrun.lab import Lab
from tests.emulators.cloud_http import closed_port_url

LAB_TOOLS = ("slurmctld", "slurmd", "munged", "sshd", "nft", "unshare", "nsenter")
# Every process this test session starts inherits this mark, so checks for leftovers can tell
# them from those of another session (or of a developer's pwrun) on the same machine.
SESSION_MARK = f"PWRUN_TEST_SESSION={uuid.uuid4().hex}"
os.environ["PWRUN_TEST_SESSION"] = SESSION_MARK.partition("=")[2]


def started_here(pid: int) -> bool:
    """Whether process `pid` descends from this test session."""
    try:
        return SESSION_MARK.encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def require_lab() -> None:
    """Skip when not root; fail loudly when root but the lab's packages are missing."""
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (network namespaces, mounts, nftables); run as root")
    missing = [t for t in LAB_TOOLS if not shutil.which(t) and not os.path.exists(f"/usr/sbin/{t}")]
    if missing:
        pytest.fail(f"lab packages missing ({', '.join(missing)}): run .ci/install first")


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """Two sites, each a login node and two compute nodes, shared by the lab tests."""
    require_lab()
    with Lab.up(sites=2, compute_nodes=2) as running:
        yield running


@pytest.fixture
def no_ambient_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test gives is used: no ~/.aws, no ADC file, no endpoint overrides; instance
    metadata services and anything else off this machine are out of reach (a closed port)."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "STORAGE_EMULATOR_HOST",
        "PWRUN_GCS_ENDPOINT",
        "AZURE_CLIENT_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    nowhere = closed_port_url().removeprefix("http://")
    monkeypatch.setenv("GCE_METADATA_IP", nowhere)
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        # SDKs' own look-ups elsewhere (google-auth's regional access boundary): refused here
        monkeypatch.setenv(name, f"http://{nowhere}")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
