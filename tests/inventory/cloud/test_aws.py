"""The AWS source against moto's EC2 server, with boto3 unchanged."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pydantic
import pytest

from pwrun.inventory import list_clusters
from pwrun.inventory.aws import AwsSource, Options
from tests.emulators.cloud_http import JsonServer, closed_port_url
from tests.inventory.cloud.conftest import Seeded, source_error
from tests.inventory.conftest import pwrun


def source(ec2: Seeded, **options: object) -> AwsSource:
    values = {"regions": ["us-east-1"], "endpoint_url": ec2.emulator.url, "timeout": 5}
    return AwsSource(Options.model_validate(values | options))


def listed(src: AwsSource) -> dict[str, object]:
    """Clusters by name, after the raw data went through JSON (as the cache stores it)."""
    parsed = src.parse(json.loads(json.dumps(src.fetch())))
    assert parsed.problems == [] and parsed.notes == []
    return {c.name: c for c in parsed.clusters}


def test_lists_exactly_the_tagged_controllers_across_pages(ec2: Seeded, aws_env: dict) -> None:
    clusters = listed(source(ec2, page_size=5, user="ec2-user"))

    assert set(clusters) == set(ec2.controllers)
    for name, (region, instance) in ec2.controllers.items():
        cluster = clusters[name]
        assert (cluster.source, cluster.cloud, cluster.region) == ("aws", "aws", region)
        assert cluster.zone == instance["Placement"]["AvailabilityZone"]
        assert cluster.private_address == instance["PrivateIpAddress"]
        running = cluster.status == "on"
        assert cluster.public_address == (instance["PublicIpAddress"] if running else None)
        assert cluster.tags["pwrun-role"] == "controller"
    special = clusters["aws-hpc"]
    assert (special.user, special.scheduler, special.partitions, special.work_dir) == (
        "rocky",
        "pbs",
        ("debug", "gpu"),
        "/shared/pwrun",
    )
    others = [c for name, c in clusters.items() if name != "aws-hpc"]
    assert {(c.user, c.scheduler, c.partitions) for c in others} == {("ec2-user", "slurm", ())}
    stopped = [c.name for c in clusters.values() if c.status == "off"]
    assert stopped == [list(ec2.controllers)[-1]]


def test_only_listed_regions_are_searched(ec2: Seeded, aws_env: dict) -> None:
    both = listed(source(ec2, regions=["us-east-1", "eu-west-1"]))
    assert set(both) == set(ec2.controllers) | set(ec2.elsewhere)
    assert {both[name].region for name in ec2.elsewhere} == {"eu-west-1"}
    assert set(listed(source(ec2, regions=["eu-west-1"]))) == set(ec2.elsewhere)


def test_tag_key_and_value_are_configurable(ec2: Seeded, aws_env: dict) -> None:
    assert list(listed(source(ec2, tag_key="Name", tag_value="aws-hpc"))) == ["aws-hpc"]
    assert listed(source(ec2, tag_value="no-such-value")) == {}


def test_named_profile_from_shared_credentials(
    ec2: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = ec2.emulator.credentials
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[hpc]\naws_access_key_id = {keys['aws_access_key_id']}\n"
        f"aws_secret_access_key = {keys['aws_secret_access_key']}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    assert set(listed(source(ec2, profile="hpc"))) == set(ec2.controllers)

    error = source_error(source(ec2, profile="nope").fetch)
    assert "'profile'" in str(error) and "nope" in str(error)


def test_bad_credentials_name_the_region_not_the_secret(
    ec2: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    error = source_error(source(ec2).fetch, secret)
    assert str(error).startswith("inventory source 'aws': region us-east-1: ")
    assert "InvalidClientTokenId" in str(error) or "AuthFailure" in str(error)

    good_key_bad_secret = ec2.emulator.credentials["aws_access_key_id"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", good_key_bad_secret)
    error = source_error(source(ec2).fetch, secret)
    assert "region us-east-1" in str(error)


def test_no_credentials_at_all(ec2: Seeded) -> None:
    error = source_error(source(ec2).fetch)
    assert "no AWS credentials found" in str(error)


def test_server_down(aws_env: dict, ec2: Seeded) -> None:
    error = source_error(source(ec2, endpoint_url=closed_port_url(), retries=0).fetch)
    assert "region us-east-1" in str(error) and "connect" in str(error).lower()


def test_slow_server_times_out(aws_env: dict, ec2: Seeded, slow_server: JsonServer) -> None:
    src = source(ec2, endpoint_url=slow_server.url, timeout=0.5, retries=0)
    error = source_error(src.fetch)
    assert "region us-east-1" in str(error) and "timeout" in str(error).lower()


def test_malformed_answer(aws_env: dict, ec2: Seeded) -> None:
    server = JsonServer()
    cut = b'<?xml version="1.0"?><DescribeInstancesResponse><reservationSet><item><instancesSet'
    server.route("POST", r"/", lambda request, match: (200, cut, {}))
    server.start()
    try:
        error = source_error(source(ec2, endpoint_url=server.url, retries=0).fetch)
    finally:
        server.stop()
    assert "region us-east-1" in str(error) and "parse" in str(error).lower()


def test_bad_record_is_skipped_and_named_the_rest_kept(ec2: Seeded, aws_env: dict) -> None:
    src = source(ec2)
    raw = src.fetch()
    first, second = raw["us-east-1"][:2]
    del first["State"]
    second["Tags"].append({"Key": "pwrun-scheduler", "Value": "lsf"})
    parsed = src.parse(raw)
    assert [str(p) for p in parsed.problems] == [
        f"inventory source 'aws': region us-east-1 instance {first['InstanceId']}: "
        "field 'State': Field required; record skipped",
        f"inventory source 'aws': region us-east-1 instance {second['InstanceId']}: "
        "tag 'pwrun-scheduler': 'lsf' is not allowed here: use one of slurm, pbs, none; "
        "record skipped",
    ]
    assert len(parsed.clusters) == len(ec2.controllers) - 2
    source_error(lambda: src.parse(["not", "a", "mapping"]))


def test_two_controllers_with_one_name_keep_the_first(ec2: Seeded, aws_env: dict) -> None:
    first, second = ec2.emulator.add_instances("ap-south-1", 2, tags={"Name": "twin"})
    parsed = source(ec2, regions=["ap-south-1"]).parse(source(ec2, regions=["ap-south-1"]).fetch())
    [twin] = parsed.clusters
    assert twin.private_address == first["PrivateIpAddress"]
    assert [str(p) for p in parsed.problems] == [
        f"inventory source 'aws': region ap-south-1 instance {second['InstanceId']}: name 'twin' "
        f"is already used by region ap-south-1 instance {first['InstanceId']}; record skipped"
    ]


def test_options_are_checked() -> None:
    with pytest.raises(pydantic.ValidationError, match="regions"):
        Options()
    with pytest.raises(pydantic.ValidationError, match="regions"):
        Options(regions=[])
    with pytest.raises(pydantic.ValidationError, match="colour"):
        Options.model_validate({"regions": ["us-east-1"], "colour": "blue"})
    defaults = Options(regions=["us-east-1"])
    assert (defaults.tag_key, defaults.tag_value, defaults.user) == (
        "pwrun-role",
        "controller",
        None,
    )


def test_hung_api_is_given_up_at_the_deadline(
    ec2: Seeded, aws_env: dict, tmp_path: Path, write_inventory
) -> None:
    """botocore's read timeout is 60 s here and the server answers after 30 s: the deadline cuts
    the source short, the others still return, and the hung threads keep no process alive."""
    hung = JsonServer(delay=30.0)
    hung.route("POST", r"/", lambda request, match: (200, {}, {}))
    hung.start()
    try:
        started = time.monotonic()
        listing = list_clusters(
            {
                "aws": source(ec2, endpoint_url=hung.url, timeout=60, retries=0, deadline=0.5),
                "fine": source(ec2),
            }
        )
        assert time.monotonic() - started < 10  # not 30 s: the deadline, with room for load
        assert [str(e) for e in listing.errors] == [
            "inventory source 'aws': no complete answer within 0.5 s (option 'deadline')"
        ]
        assert {c.name for c in listing.clusters} == set(ec2.controllers)

        path = write_inventory(
            "plugin: pwrun\nsources:\n  aws:\n    regions: [us-east-1, eu-west-1]\n"
            f"    endpoint_url: {hung.url}\n    timeout: 60\n    retries: 0\n    deadline: 1\n"
        )
        env = {**os.environ, **aws_env}
        for args, code, level in (((), 0, "warning"), (("--strict",), 2, "error")):
            started = time.monotonic()
            result = pwrun("inventory", *args, str(path), env=env, timeout=30)
            assert time.monotonic() - started < 5
            assert result.returncode == code, result.stderr
            assert result.stderr == (
                f"{level}: inventory source 'aws': no complete answer within 1 s "
                "(option 'deadline')\n"
            )
    finally:
        hung.stop()
