"""The GCP source against the Compute Engine emulator, with google-cloud-compute unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest

from pwrun.inventory.gcp import GcpSource, Options
from tests.emulators.cloud_http import closed_port_url
from tests.emulators.gcp_compute import GcpComputeEmulator
from tests.inventory.cloud.conftest import Seeded, source_error

REPO = Path(__file__).resolve().parents[3]
LISTED = {"projects": ["proj-a", "proj-b"], "zones": ["us-central1-a", "us-east1-b"]}


def source(gcp: Seeded, **options: object) -> GcpSource:
    values = LISTED | {
        "credentials_file": str(gcp.key_file),
        "endpoint_url": gcp.emulator.url,
        "timeout": 5,
    }
    return GcpSource(Options.model_validate(values | options))


def listed(src: GcpSource) -> dict[str, object]:
    parsed = src.parse(json.loads(json.dumps(src.fetch())))
    assert parsed.problems == [] and parsed.notes == []
    return {c.name: c for c in parsed.clusters}


def test_lists_exactly_the_labelled_controllers_across_pages(gcp: Seeded) -> None:
    before = len(gcp.emulator.server.paths)
    clusters = listed(source(gcp, user="hpcuser"))

    assert set(clusters) == set(gcp.controllers)
    # proj-a/us-central1-a holds 1,203 controllers: 3 pages; the other three places 1 each.
    assert len(gcp.emulator.server.paths) - before == 3 + 3
    for name, (place, instance) in gcp.controllers.items():
        cluster = clusters[name]
        zone = place.split("/")[1]
        nic = instance["networkInterfaces"][0]
        assert (cluster.source, cluster.cloud, cluster.zone) == ("gcp", "gcp", zone)
        assert cluster.region == zone.rsplit("-", 1)[0]
        assert cluster.private_address == nic["networkIP"]
        assert cluster.public_address == (nic.get("accessConfigs") or [{}])[0].get("natIP")
        assert cluster.status == ("on" if instance["status"] == "RUNNING" else "off")
        assert cluster.tags == instance["labels"]
    special = clusters["gcp-hpc-1"]
    assert (special.user, special.partitions, special.work_dir) == (
        "rocky",
        ("debug", "gpu"),
        "/shared/pwrun",
    )
    assert [c.name for c in clusters.values() if c.status == "off"] == ["gcp-off-1207"]
    assert {c.user for n, c in clusters.items() if n != "gcp-hpc-1"} == {"hpcuser"}
    assert sum(c.public_address is None for c in clusters.values()) == 3  # proj-b + terminated


def test_only_listed_projects_and_zones(gcp: Seeded) -> None:
    clusters = listed(source(gcp, projects=["proj-a"], zones=["us-east1-b", "europe-west4-a"]))
    expected = {n for n, (place, _) in gcp.controllers.items() if place == "proj-a/us-east1-b"}
    assert set(clusters) == expected | set(gcp.elsewhere)
    assert not set(clusters) & set(gcp.noise)


def test_label_is_configurable(gcp: Seeded) -> None:
    assert set(listed(source(gcp, tag_key="role", tag_value="compute"))) == set(gcp.noise)


def test_application_default_credentials(gcp: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(gcp.key_file))
    assert len(listed(source(gcp, credentials_file=None, zones=["us-east1-b"]))) == 4


def test_untrusted_key_is_refused_without_leaking_it(gcp: Seeded, tmp_path: Path) -> None:
    key_file = gcp.emulator.service_account_file(tmp_path, trusted=False)
    private_key = json.loads(key_file.read_text())["private_key"]
    error = source_error(source(gcp, credentials_file=str(key_file)).fetch, private_key[40:80])
    assert "project proj-a zone us-central1-a: 401 Request had invalid" in str(error)
    assert "invalid authentication credentials" in str(error)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        ("{not json", "is not a service-account key"),
        ('{"type": "service_account", "client_email": "x@y"}', "is not a service-account key"),
    ],
)
def test_bad_key_file(gcp: Seeded, tmp_path: Path, content: str | None, expected: str) -> None:
    key_file = tmp_path / "key.json"
    if content is not None:
        key_file.write_text(content)
    error = source_error(source(gcp, credentials_file=str(key_file)).fetch)
    assert f"option 'credentials_file': {key_file}" in str(error) and expected in str(error)


def test_no_credentials_at_all(tmp_path: Path) -> None:
    """In a child process: google-auth reads NO_GCE_CHECK at import, and the metadata server
    (a non-loopback address) must never be tried."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "GCE_"))}
    env |= {"NO_GCE_CHECK": "true", "HOME": str(tmp_path), "CLOUDSDK_CONFIG": str(tmp_path)}
    code = (
        "from pwrun.inventory.gcp import GcpSource, Options\n"
        "from pwrun.errors import SourceError\n"
        "try:\n"
        "    GcpSource(Options(projects=['p'], zones=['z'], endpoint_url='http://127.0.0.1:9'))"
        ".fetch()\n"
        "except SourceError as e:\n"
        "    print(e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert "no application default credentials" in result.stdout, result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_zone_is_named(gcp: Seeded) -> None:
    error = source_error(source(gcp, projects=["proj-a"], zones=["us-central1-q"]).fetch)
    assert "project proj-a zone us-central1-q: 404 The resource" in str(error)


def test_server_down(gcp: Seeded) -> None:
    error = source_error(source(gcp, endpoint_url=closed_port_url(), retries=0).fetch)
    assert "zone us-central1-a: cannot reach the API at http" in str(error)
    assert "connection refused" in str(error)


def test_slow_server_times_out(gcp: Seeded, tmp_path: Path) -> None:
    with GcpComputeEmulator() as emu:
        emu.add_instances("p", "z-a", 1)
        emu.server.delay = 3.0
        key = str(emu.service_account_file(tmp_path))
        src = source(gcp, projects=["p"], zones=["z-a"], endpoint_url=emu.url, timeout=0.5,
                     retries=0, credentials_file=key)  # fmt: skip
        error = source_error(src.fetch)
    assert "project p zone z-a" in str(error) and "timeout" in str(error)


def test_malformed_answer(gcp: Seeded, tmp_path: Path) -> None:
    with GcpComputeEmulator() as emu:
        emu.add_instances("p", "z-a", 3)
        key = str(emu.service_account_file(tmp_path))
        emu.server.malformed = True
        src = source(gcp, projects=["p"], zones=["z-a"], endpoint_url=emu.url, credentials_file=key)
        error = source_error(src.fetch)
    assert "project p zone z-a: malformed API answer" in str(error)


def test_partial_instance_is_skipped_and_named(gcp: Seeded, tmp_path: Path) -> None:
    with GcpComputeEmulator() as emu:
        kept, partial = emu.add_instances("p", "z-a", 2)
        del partial["status"]
        key = str(emu.service_account_file(tmp_path))
        src = source(gcp, projects=["p"], zones=["z-a"], endpoint_url=emu.url, credentials_file=key)
        parsed = src.parse(src.fetch())
    assert [c.name for c in parsed.clusters] == [kept["name"]]
    assert [str(p) for p in parsed.problems] == [
        f"inventory source 'gcp': project p zone z-a instance {partial['name']}: "
        "field 'status': String should have at least 1 character; record skipped"
    ]


def test_only_pwrun_metadata_is_kept(gcp: Seeded) -> None:
    raw = source(gcp, zones=["us-central1-a"]).fetch()
    kept = raw["proj-a"]["us-central1-a"][0]
    assert kept["settings"] == {"pwrun-partitions": "debug,gpu", "pwrun-work-dir": "/shared/pwrun"}
    assert "ssh-keys" not in json.dumps(raw)


def test_options_are_checked() -> None:
    with pytest.raises(pydantic.ValidationError, match="zones"):
        Options(projects=["p"])
    with pytest.raises(pydantic.ValidationError, match="projects"):
        Options(projects=[], zones=["z"])
    with pytest.raises(pydantic.ValidationError, match="region"):
        Options.model_validate({"projects": ["p"], "zones": ["z"], "region": "us"})


def test_emulator_oauth_token_endpoint(gcp: Seeded) -> None:
    """The other real flow: google-auth POSTs a signed JWT to `token_uri` for an access token,
    which the API then accepts; a token it never issued is refused."""
    import google.auth.transport.requests
    import requests
    from google.oauth2 import service_account

    credentials = service_account.Credentials.from_service_account_file(
        str(gcp.key_file), scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    credentials.refresh(google.auth.transport.requests.Request())
    assert credentials.token in gcp.emulator.tokens
    url = f"{gcp.emulator.url}/compute/v1/projects/proj-b/zones/us-central1-a/instances"
    answer = requests.get(url, headers={"Authorization": f"Bearer {credentials.token}"}, timeout=5)
    assert [i["name"] for i in answer.json()["items"]] == ["ctl-1208", "ctl-1209"]
    refused = requests.get(url, headers={"Authorization": "Bearer ya29.made-up"}, timeout=5)
    assert refused.status_code == 401 and refused.json()["error"]["status"] == "UNAUTHENTICATED"
