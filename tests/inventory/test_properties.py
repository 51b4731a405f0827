"""Properties of everything the inventory reads from outside: the inventory file and the APIs'
answers. Whatever arrives, the result is clusters whose every checked value passes
pwrun.validation, or a one-line PwrunError/SourceError naming where; never another exception,
never a traceback, never a secret."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pwrun import validation
from pwrun.errors import PwrunError, SourceError, source_prefix
from pwrun.inventory.aws import AwsSource
from pwrun.inventory.aws import Options as AwsOptions
from pwrun.inventory.azure import AzureSource
from pwrun.inventory.azure import Options as AzureOptions
from pwrun.inventory.config import load_config
from pwrun.inventory.gcp import GcpSource
from pwrun.inventory.gcp import Options as GcpOptions
from pwrun.inventory.model import MAX_REPORTED, Parsed, Source, note_prefix
from pwrun.inventory.pw import Options as PwOptions
from pwrun.inventory.pw import PwSource
from pwrun.inventory.sources import SOURCE_KINDS, source_kind
from tests.emulators.pw_api import PwApiEmulator
from tests.inventory.conftest import PW_KEY, pwrun

CANARY = "pwt_canary_53cr37_do_not_print"
PROPERTIES = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# ---- strategies -------------------------------------------------------------------------------

HOSTILE = [
    "x{{ lookup('pipe', 'touch /tmp/pwned') }}",
    "{% raw %}",
    "-oProxyCommand=sh",
    "$(reboot)",
    "`id`; rm -rf ~",
    "a b",
    "../../etc",
    "/home/a/../b",
    "line\nbreak",
    "[/]",
    "é🙂\u202e",
    "\x00",
    "",
]
PLAIN = ["alice", "ctl-1", "10.0.0.7", "2001:db8::7", "login.example.org", "/home/alice", "~/w"]
text = st.one_of(
    st.sampled_from(HOSTILE + PLAIN),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=20),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), text)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)


names = st.from_regex(validation.CLUSTER_NAME, fullmatch=True)
users = st.from_regex(validation.USER_NAME, fullmatch=True)
ips = st.ip_addresses().map(str)
hosts = st.one_of(ips, st.sampled_from(["login.example.org", "h1", "node-3.hpc.example.edu."]))
paths = st.from_regex(validation.REMOTE_PATH, fullmatch=True)


def now_and_then(
    usual: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    """`usual` about nine times in ten, else `rare`: records have many fields, and a record
    with one bad field is only skipped, so each field is bad rarely."""
    return st.integers(0, 9).flatmap(lambda roll: rare if roll == 0 else usual)


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually a valid value; else hostile text or any JSON value."""
    return now_and_then(valid, text | json_values)


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly `value`, sometimes any JSON value."""
    return now_and_then(value, json_values)


def shaped(
    required: dict[str, st.SearchStrategy[Any]] | None = None, **optional: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    """Mostly a mapping with the `required` fields and any subset of the `optional` ones."""
    return maybe(st.fixed_dictionaries(required or {}, optional=optional))


def option_keys(kind: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(sorted(source_kind(kind).options.model_fields)), text)


def source_options(kind: str) -> st.SearchStrategy[Any]:
    secret_field = {"pw": "api_key", "azure": "client_secret"}.get(kind)
    options = st.dictionaries(option_keys(kind), json_values, max_size=5)
    if secret_field:  # pasted into the file: an unknown option, whose value is never shown
        options = st.builds(
            lambda o, pasted: o | ({secret_field: CANARY} if pasted else {}), options, st.booleans()
        )
    return st.one_of(st.none(), options, json_values)


documents = st.fixed_dictionaries(
    {
        "plugin": maybe(st.just("pwrun")),
        "sources": st.one_of(
            st.fixed_dictionaries({}, optional={k: source_options(k) for k in SOURCE_KINDS}),
            st.dictionaries(text, json_values, max_size=3),
        ),
    },
    optional={
        key: json_values
        for key in ("strict", "strict_sources", "compose", "keyed_groups", "cache", "typo")
    },
)


def assert_one_line_about(message: str, start: str) -> None:
    assert message.startswith(start), message
    assert "\n" not in message and "\r" not in message, message
    assert "Traceback" not in message and CANARY not in message and PW_KEY not in message


# ---- (a) the inventory file ------------------------------------------------------------------


def check_file(path: Path) -> None:
    try:
        config = load_config(path)
    except PwrunError as exc:
        assert type(exc) in (PwrunError, SourceError)
        message = str(exc)
        assert_one_line_about(message, f"{path}: ")
        assert message.removeprefix(f"{path}: ").split(": ")[0], message  # a field or problem
    else:
        assert set(config.sources) <= set(SOURCE_KINDS)


@PROPERTIES
@given(document=documents)
def test_any_mapping_loads_or_names_file_and_field(
    document: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    monkeypatch.setenv("PW_API_KEY", CANARY)
    path = tmp_path / "any.pwrun.yml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    check_file(path)


@PROPERTIES
@given(content=st.one_of(st.binary(max_size=200), text.map(str.encode)))
def test_any_bytes_load_or_name_the_file(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "any.pwrun.yml"
    path.write_bytes(b"plugin: pwrun\nsources:\n  pw: " + content)
    check_file(path)
    path.write_bytes(content)
    check_file(path)


# ---- (b) the APIs' answers -------------------------------------------------------------------

pw_records = shaped(
    {"name": mostly(names)},
    namespace=text,
    type=st.sampled_from(["gclusterv2", "existing", "pbs"]),
    status=st.sampled_from(["on", "off"]),
    currentSessionStatus=text,
    controllerIp=mostly(hosts),
    tags=st.one_of(text, st.lists(text), st.dictionaries(text, text)),
    state=shaped(masterNode=mostly(st.builds("{}@{}".format, users, hosts))),
    settings=shaped(slurmUsername=mostly(users)),
    variables=shaped(
        workdir=mostly(paths),
        privateIp=st.one_of(ips, text),
        slurmUsername=mostly(users),
        slurmLoginNode=mostly(hosts),
        scheduler=text,
        region=text,
        zone=text,
        partition_config=st.lists(shaped({"name": text}), max_size=3),
    ),
)
host_keys = st.one_of(
    st.builds("ssh-ed25519 {}".format, st.from_regex(r"[A-Za-z0-9+/]{16,80}", fullmatch=True)),
    st.sampled_from(["SHA256:abc", "@cert-authority * ssh-rsa AAAA"]),
    text,
)
pw_current_records = shaped(  # today's GET /api/clusters items (the SDK's GeneralCluster)
    {"name": mostly(names), "status": st.one_of(st.sampled_from(["active", "on", "off",
                                                                 "stopped", "failed"]), text)},
    ipAddress=mostly(hosts),
    connectionString=mostly(st.builds("{}@{}".format, users, hosts)),
    shouldPlatformProxy=st.one_of(st.booleans(), text),
    sshHostKeys=maybe(st.lists(host_keys, max_size=3)),
    user=text,
    csp=text,
    tags=maybe(st.lists(text, max_size=3)),
    latestDeploymentNumber=st.one_of(st.integers(), text),
)  # fmt: skip
pw_raw = st.one_of(
    shaped(
        {"clusters": st.lists(pw_records, max_size=8)},
        api=st.sampled_from(["v3", "legacy"]),
        username=mostly(users),
    ),
    shaped(
        {"clusters": st.lists(pw_current_records, max_size=8), "api": st.just("current")},
        username=mostly(users),
        host_keys=st.one_of(st.dictionaries(names, st.lists(host_keys, max_size=2)), json_values),
    ),
    json_values,
)
controller_tag = {"Key": "pwrun-role", "Value": "controller"}
tag_values = {"Name": names, "pwrun-user": users, "pwrun-work-dir": paths, "team": text,
              "pwrun-scheduler": st.sampled_from(["slurm", "PBS", "none", "lsf"])}  # fmt: skip
aws_tags = st.builds(
    lambda tags, marked: (
        [{"Key": k, "Value": v} for k, v in tags.items()] + ([controller_tag] if marked else [])
    ),
    st.fixed_dictionaries({}, optional={k: mostly(v) for k, v in tag_values.items()}),
    st.booleans(),
)
aws_instances = shaped(
    {"InstanceId": mostly(names), "State": shaped({"Name": st.sampled_from(["running", "stopped",
                                                                          "terminated"])})},
    PrivateIpAddress=mostly(ips),
    PublicIpAddress=mostly(ips),
    Placement=shaped(AvailabilityZone=text),
    Tags=maybe(aws_tags),
)  # fmt: skip
settings_values = {k: mostly(v) for k, v in tag_values.items() if k.startswith("pwrun-")}
labels = st.builds(
    lambda values, marked: values | ({"pwrun-role": "controller"} if marked else {}),
    st.fixed_dictionaries({}, optional=settings_values),
    st.booleans(),
)
gcp_instances = shaped(
    {"name": mostly(names), "status": st.sampled_from(["RUNNING", "TERMINATED", ""])},
    labels=maybe(labels),
    settings=maybe(st.fixed_dictionaries({}, optional=settings_values)),
    networkInterfaces=st.lists(
        shaped(networkIP=mostly(ips), accessConfigs=st.lists(shaped(natIP=mostly(ips)))),
        max_size=2,
    ),
)
azure_vms = shaped(
    {"id": st.just("/vm/1"), "name": mostly(names), "location": text},
    zones=st.lists(text, max_size=1),
    tags=maybe(labels),
    properties=shaped(
        osProfile=shaped(adminUsername=mostly(users)),
        networkProfile=shaped(networkInterfaces=st.lists(shaped({"id": st.just("nic")}))),
    ),
)
azure_subscriptions = shaped(
    {
        "vms": st.lists(azure_vms, max_size=5),
        "power": st.dictionaries(st.just("/vm/1"), st.sampled_from(["running", "stopped"])),
        "nics": st.dictionaries(
            st.just("nic"), shaped(private=mostly(ips), public_ip=st.just("ip"))
        ),
        "public_ips": st.dictionaries(st.just("ip"), mostly(ips)),
    }
)
SOURCES: dict[str, tuple[Source[Any], st.SearchStrategy[Any]]] = {
    "pw": (PwSource(PwOptions()), pw_raw),
    "aws": (
        AwsSource(AwsOptions(regions=["r"])),
        maybe(st.dictionaries(text, st.lists(aws_instances, max_size=6), max_size=2)),
    ),
    "gcp": (
        GcpSource(GcpOptions(projects=["p"], zones=["z"])),
        maybe(
            st.dictionaries(
                text, st.dictionaries(text, st.lists(gcp_instances, max_size=6), max_size=2)
            )
        ),
    ),
    "azure": (
        AzureSource(AzureOptions(subscriptions=["s"])),
        maybe(st.dictionaries(text, azure_subscriptions, max_size=2)),
    ),
}


def check_parsed(kind: str, parsed: Parsed) -> None:
    for cluster in parsed.clusters:
        validation.cluster_name(cluster.name)
        for value, check in (
            (cluster.user, validation.user_name),
            (cluster.public_address, validation.address),
            (cluster.private_address, validation.ip_address),
            (cluster.work_dir, validation.remote_path),
        ):
            if value is not None:
                check(value)
    assert len({cluster.name for cluster in parsed.clusters}) == len(parsed.clusters)
    assert len(parsed.problems) <= MAX_REPORTED + 1 and len(parsed.notes) <= MAX_REPORTED + 1
    for problem in parsed.problems:
        assert_one_line_about(str(problem), source_prefix(kind))
    for note in parsed.notes:
        assert_one_line_about(note, note_prefix(kind))


@pytest.mark.parametrize("kind", list(SOURCES))
def test_any_answer_parses_to_valid_clusters_or_a_source_error(kind: str) -> None:
    source, answers = SOURCES[kind]

    @PROPERTIES
    @given(raw=answers)
    def check(raw: Any) -> None:
        try:
            parsed = source.parse(raw)
        except SourceError as exc:
            assert_one_line_about(str(exc), source_prefix(kind))
        else:
            check_parsed(kind, parsed)

    check()


# ---- (c) through the real HTTP path ----------------------------------------------------------


def hostile_records(count: int) -> bytes:
    record = {"name": "x{{ lookup('pipe', 'touch /tmp/pwned') }}", "controllerIp": "$(id)"}
    return json.dumps([record] * count).encode()


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "the answer is not valid JSON"),
        (b'[{"name": "a", "controllerIp": "10.0.0', "the answer is not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "the answer is not valid JSON"),
        (hostile_records(20_000), "field 'name': \"x{{ lookup('pipe', "),
    ],
    ids=["html", "truncated", "deep", "20000-records"],
)
def test_garbage_answer_through_the_cli(
    pw_api: PwApiEmulator, pw_env: dict, write_inventory, body: bytes, problem: str
) -> None:
    pw_api.v3_items = body
    path = write_inventory("plugin: pwrun\nsources:\n  pw:\n    retries: 0\n    deadline: 20\n")
    for args, code, level in (((), 0, "warning"), (("--strict",), 2, "error")):
        started = time.monotonic()
        result = pwrun("inventory", *args, str(path), env=pw_env)
        assert time.monotonic() - started < 20
        assert result.returncode == code, result.stderr
        lines = result.stderr.splitlines()
        assert lines and all(line.startswith(f"{level}: inventory source 'pw': ") for line in lines)
        assert len(lines) == 1 or (code == 0 and len(lines) == MAX_REPORTED + 1)
        assert problem in lines[0] and "Traceback" not in result.stderr
