"""Records to clusters, without any API: the pure mapping of each source's `records` module."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import requests

from pwrun.inventory.aws import Options as AwsOptions
from pwrun.inventory.aws import records as aws
from pwrun.inventory.azure import Options as AzureOptions
from pwrun.inventory.azure import records as azure
from pwrun.inventory.gcp import Options as GcpOptions
from pwrun.inventory.gcp import records as gcp
from pwrun.inventory.model import RecordError
from pwrun.inventory.pw import records as pw
from pwrun.inventory.pw.client import KeyAuth

CONTROLLER = {"pwrun-role": "controller"}


# ---- pw ---------------------------------------------------------------------------------------


def test_pw_full_record() -> None:
    cluster = pw.cluster(
        {
            "name": "c1",
            "namespace": "alice",
            "type": "pclusterv2",
            "status": "off",
            "currentSessionStatus": "running",
            "controllerIp": "192.0.2.7",
            "tags": {"team": "hpc"},
            "variables": {
                "workdir": "/work",
                "privateIp": "10.0.0.5",
                "region": "us-east-1",
                "zone": "us-east-1a",
                "partitions": ["a", {"name": "b"}],
            },
        },
        None,
    )
    assert (cluster.status, cluster.cloud, cluster.scheduler) == ("on", "aws", "slurm")
    assert (cluster.public_address, cluster.private_address) == ("192.0.2.7", "10.0.0.5")
    assert (cluster.partitions, cluster.work_dir, cluster.tags) == (
        ("a", "b"),
        "/work",
        {"team": "hpc"},
    )
    assert (cluster.region, cluster.zone, cluster.namespace) == ("us-east-1", "us-east-1a", "alice")


def test_pw_minimal_record() -> None:
    cluster = pw.cluster({"name": "bare"}, None)
    assert (cluster.status, cluster.address, cluster.user, cluster.cloud) == (
        "off",
        None,
        None,
        None,
    )
    assert (cluster.partitions, cluster.tags, cluster.scheduler) == ((), {}, "slurm")


@pytest.mark.parametrize(
    ("record", "address", "user"),
    [
        (
            {"controllerIp": "192.0.2.1", "state": {"masterNode": "bob@192.0.2.2"}},
            "192.0.2.1",
            "bob",
        ),
        ({"state": {"masterNode": "bob@192.0.2.2"}}, "192.0.2.2", "bob"),
        ({"state": {"masterNode": "192.0.2.2"}}, "192.0.2.2", "platform"),
        ({"variables": {"slurmLoginNode": "login.example.org"}}, "login.example.org", "platform"),
        (
            {
                "settings": {"slurmUsername": "s"},
                "variables": {"slurmUsername": "v"},
                "state": {"masterNode": "m@h"},
            },
            "h",
            "s",
        ),
        ({"variables": {"slurmUsername": "v"}, "state": {"masterNode": "m@h"}}, "h", "v"),
        ({"controllerIp": "", "settings": {"slurmUsername": ""}}, None, "platform"),
    ],
)
def test_pw_address_and_user_precedence(record: dict, address: str | None, user: str) -> None:
    cluster = pw.cluster({"name": "c", **record}, "platform")
    assert (cluster.public_address, cluster.user) == (address, user)


@pytest.mark.parametrize(
    ("variables", "kind", "expected"),
    [
        ({"scheduler": "PBS"}, None, "pbs"),
        ({"jobschedulertype": "none"}, None, "none"),
        ({}, "pbs-cluster", "pbs"),
        ({"scheduler": "slurm"}, "pbs-cluster", "slurm"),
        ({}, None, "slurm"),
    ],
)
def test_pw_scheduler(variables: dict, kind: str | None, expected: str) -> None:
    assert (
        pw.cluster({"name": "c", "type": kind, "variables": variables}, None).scheduler == expected
    )


@pytest.mark.parametrize(
    ("tags", "expected"),
    [("a, b,,c", {"a": "", "b": "", "c": ""}), (["x", " "], {"x": ""}), ({"k": "v"}, {"k": "v"})],
)
def test_pw_tag_forms(tags: Any, expected: dict) -> None:
    assert pw.cluster({"name": "c", "tags": tags}, None).tags == expected


def test_pw_interface_name_is_no_private_address() -> None:
    assert (
        pw.cluster({"name": "c", "variables": {"privateIp": "ens5"}}, None).private_address is None
    )
    assert pw.ip_or_none("10.1.2.3") == "10.1.2.3"


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"name": "c", "state": {"masterNode": "-oX@h"}}, "field 'state.masterNode'"),
        ({"name": "a b"}, "field 'name'"),
        ([], "the record: Input should be a valid dictionary"),
    ],
)
def test_pw_bad_record_names_the_field(record: Any, problem: str) -> None:
    with pytest.raises(RecordError, match=problem):
        pw.cluster(record, None)


@pytest.mark.parametrize(
    ("record", "named"),
    [
        ({"settings": {"slurmUsername": "u"}}, True),
        ({"variables": {"slurmUsername": "u"}}, True),
        ({"state": {"masterNode": "u@h"}}, True),
        ({"state": {"masterNode": "h"}}, False),
        ({"settings": None, "variables": "junk"}, False),
    ],
)
def test_pw_names_user(record: dict, named: bool) -> None:
    assert pw.names_user(record) is named


@pytest.mark.parametrize(
    ("key", "header"),
    [
        ("pwut_token", "Bearer pwut_token"),
        ("a.b.c", "Bearer a.b.c"),
        ("pwt_key", "Basic " + base64.b64encode(b"pwt_key:").decode()),
    ],
)
def test_pw_key_auth_header(key: str, header: str) -> None:
    request = requests.Request("GET", "http://127.0.0.1/", auth=KeyAuth(key)).prepare()
    assert request.headers["Authorization"] == header
    assert key not in repr(KeyAuth(key))


# ---- clouds -----------------------------------------------------------------------------------


def test_is_controller_follows_tag_options() -> None:
    options = AwsOptions(regions=["r"], tag_key="role", tag_value="head")
    assert options.is_controller({"role": "head"})
    assert not options.is_controller({"role": "worker"}) and not options.is_controller(None)


def aws_instance(**fields: Any) -> dict[str, Any]:
    tags = [{"Key": k, "Value": v} for k, v in (CONTROLLER | fields.pop("tags", {})).items()]
    return {"InstanceId": "i-0abc", "State": {"Name": "running"}, "Tags": tags, **fields}


def test_aws_instance() -> None:
    options = AwsOptions(regions=["eu-west-1"], user="ec2-user")
    data = aws_instance(
        tags={"Name": "head", "pwrun-scheduler": "PBS", "pwrun-partitions": "a, b"},
        PrivateIpAddress="10.0.0.1",
        Placement={"AvailabilityZone": "eu-west-1b"},
    )
    cluster = aws.cluster("eu-west-1", data, options)
    assert cluster is not None
    assert (cluster.name, cluster.status, cluster.region, cluster.zone) == (
        "head",
        "on",
        "eu-west-1",
        "eu-west-1b",
    )
    assert (cluster.user, cluster.scheduler, cluster.partitions) == ("ec2-user", "pbs", ("a", "b"))
    by_id = aws.cluster("r", aws_instance(), options)
    assert by_id is not None and by_id.name == "i-0abc"


@pytest.mark.parametrize(
    "data",
    [aws_instance(State={"Name": "terminated"}), aws_instance(tags={"pwrun-role": "worker"})],
)
def test_aws_not_listed(data: dict) -> None:
    assert aws.cluster("r", data, AwsOptions(regions=["r"])) is None


def test_aws_bad_tag_is_named() -> None:
    with pytest.raises(RecordError, match="tag 'Name'"):
        aws.cluster("r", aws_instance(tags={"Name": "a b"}), AwsOptions(regions=["r"]))
    with pytest.raises(RecordError, match="tag 'pwrun-scheduler'"):
        aws.cluster("r", aws_instance(tags={"pwrun-scheduler": "lsf"}), AwsOptions(regions=["r"]))
    assert aws.KEPT_FIELDS[0] == "InstanceId"


def test_gcp_metadata_wins_over_labels() -> None:
    data = {
        "name": "head",
        "status": "TERMINATED",
        "labels": CONTROLLER | {"pwrun-user": "label-user"},
        "settings": {"pwrun-user": "meta-user", "pwrun-work-dir": "/shared/x"},
        "networkInterfaces": [
            {"networkIP": "10.0.0.2", "accessConfigs": [{"natIP": None}, {"natIP": "192.0.2.9"}]}
        ],
    }
    cluster = gcp.cluster("us-central1-a", data, GcpOptions(projects=["p"], zones=["z"]))
    assert cluster is not None
    assert (cluster.user, cluster.work_dir, cluster.status) == ("meta-user", "/shared/x", "off")
    assert (cluster.region, cluster.public_address, cluster.private_address) == (
        "us-central1",
        "192.0.2.9",
        "10.0.0.2",
    )
    with pytest.raises(RecordError, match="metadata item or label 'pwrun-user'"):
        gcp.cluster(
            "z", {**data, "settings": {"pwrun-user": "-o"}}, GcpOptions(projects=["p"], zones=["z"])
        )


def test_azure_vm_finds_its_nic_and_public_ip() -> None:
    nic_id = "/subscriptions/S/resourceGroups/RG/providers/Microsoft.Network/networkInterfaces/N"
    sub = azure.Subscription(
        vms=[],
        power={"/x/vm1": "running"},
        nics={nic_id.lower(): azure.Nic(private="10.0.0.3", public_ip="/ip/1")},
        public_ips={"/ip/1": "192.0.2.3"},
    )
    data = {
        "id": "/X/VM1",
        "name": "vm1",
        "location": "eastus",
        "zones": ["2"],
        "tags": CONTROLLER,
        "properties": {
            "osProfile": {"adminUsername": "azureuser"},
            "networkProfile": {"networkInterfaces": [{"id": nic_id}]},
        },
    }
    options = AzureOptions(subscriptions=["S"])
    cluster = azure.cluster(sub, data, options)
    assert cluster is not None
    assert (cluster.public_address, cluster.private_address, cluster.status) == (
        "192.0.2.3",
        "10.0.0.3",
        "on",
    )
    assert (cluster.zone, cluster.user) == ("eastus-2", "azureuser")
    bare = azure.cluster(sub, {**data, "properties": {}, "zones": []}, options)
    assert bare is not None and (bare.address, bare.zone, bare.user) == (None, None, None)
    assert azure.cluster(sub, {**data, "tags": {}}, options) is None
