"""The PW source against a local PW API server: both endpoint generations and every failure."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from parallelworks_client.models.general_cluster_status import GeneralClusterStatus

from pwrun.errors import SourceError
from pwrun.inventory import host_vars, pin_host_keys
from pwrun.inventory.model import MAX_REPORTED, Parsed
from pwrun.inventory.pw import Options, PwSource
from pwrun.provision.inventory import ssh_target
from tests.emulators.pw_api import PwApiEmulator, current_view, pw_cluster
from tests.inventory.conftest import PW_KEY, sample_clusters


def parsed(**options) -> Parsed:
    source = PwSource(Options(**options))
    return source.parse(source.fetch())


def listing(**options) -> dict:
    result = parsed(**options)
    assert result.problems == []
    return {cluster.name: cluster for cluster in result.clusters}


def failure(**options) -> str:
    source = PwSource(Options(**options))
    with pytest.raises(SourceError) as caught:
        source.parse(source.fetch())
    message = str(caught.value)
    assert message.startswith("inventory source 'pw': ")
    assert PW_KEY not in message
    return message


def test_v3_clusters_become_controllers(pw_api: PwApiEmulator, pw_env) -> None:
    clusters = listing()
    assert list(clusters) == ["gcpslurmv2", "awsoff", "onprem", "bare"]
    gcp = clusters["gcpslurmv2"]
    assert (gcp.source, gcp.status, gcp.scheduler, gcp.user) == ("pw", "on", "slurm", "alice")
    assert (gcp.public_address, gcp.private_address) == ("34.171.136.114", "10.128.0.2")
    assert (gcp.cloud, gcp.region, gcp.zone) == ("gcp", "us-central1", "us-central1-a")
    assert (gcp.partitions, gcp.work_dir, gcp.namespace) == (
        ("compute", "gpu"),
        "/home/alice/pw",
        "alice",
    )
    off = clusters["awsoff"]
    assert (off.status, off.public_address, off.cloud) == ("off", None, "aws")
    onprem = clusters["onprem"]
    assert (onprem.address, onprem.private_address) == ("login.hpc.example.org", None)
    assert (onprem.scheduler, onprem.cloud, onprem.user) == ("pbs", "onprem", "alice")
    bare = clusters["bare"]
    assert (bare.status, bare.address, bare.partitions, bare.work_dir) == ("on", None, (), None)
    assert bare.user == "alice"  # from /api/v2/auth/session
    assert pw_api.hits["/api/v2/auth/session"] == 1
    assert pw_api.unauthorized == 0 and not pw_api.key_in_url


def test_legacy_resources_when_v3_is_missing(pw_api: PwApiEmulator, pw_env) -> None:
    pw_api.v3 = False
    pw_api.username = "platform-user"
    clusters = listing()
    gcp = clusters["gcpslurmv2"]
    assert gcp.address == "34.171.136.114"  # state.masterNode
    assert gcp.user == "alice"  # settings.slurmUsername
    assert gcp.tags == {"gcp": "", "slurm": "", "cpu": ""}
    assert clusters["bare"].user == "platform-user"
    assert pw_api.hits["/api/compute/clusters"] == 1 and pw_api.hits["/api/resources"] == 1


def test_legacy_master_node_with_user(pw_api: PwApiEmulator, pw_env) -> None:
    pw_api.legacy_items = [
        {"name": "old", "status": "on", "type": "existing", "state": {"masterNode": "bob@10.1.2.3"}}
    ]
    old = listing(api="legacy")["old"]
    assert (old.address, old.user, old.cloud) == ("10.1.2.3", "bob", "onprem")
    assert pw_api.hits["/api/compute/clusters"] == 0
    assert pw_api.hits["/api/v2/auth/session"] == 0


def test_key_file_must_be_private(
    pw_api: PwApiEmulator, pw_env, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("PW_API_KEY")
    key_file = tmp_path / "pw_api.key"
    key_file.write_text(PW_KEY + "\n")
    key_file.chmod(0o644)
    message = failure(api_key_file=key_file)
    assert f"api_key_file {key_file} is readable by others (mode 0644)" in message
    assert pw_api.hits.total() == 0
    key_file.chmod(0o600)
    assert "gcpslurmv2" in listing(api_key_file=key_file)


def test_default_key_file_and_missing_key(pw_api: PwApiEmulator, pw_env, monkeypatch) -> None:
    monkeypatch.delenv("PW_API_KEY")
    assert "no API key: set PW_API_KEY or write the key to" in failure()
    key_file = Path(pw_env["HOME"]) / ".ssh" / "pw_api.key"
    key_file.parent.mkdir()
    key_file.write_text(PW_KEY)
    key_file.chmod(0o600)
    assert len(listing()) == 4


def test_user_token_is_sent_as_bearer(pw_env, monkeypatch) -> None:
    token = "pwut_userTokenForTests42"
    with PwApiEmulator(api_key=token) as api:
        api.clusters.extend(sample_clusters())
        monkeypatch.setenv("MY_PW_TOKEN", token)
        assert len(listing(host=api.url, api_key_env="MY_PW_TOKEN")) == 4
        assert api.unauthorized == 0


def test_rejected_key(pw_api: PwApiEmulator, pw_env, monkeypatch) -> None:
    monkeypatch.setenv("PW_API_KEY", "pwt_wrong")
    message = failure()
    assert "/api/clusters: HTTP 401, the platform rejected the API key" in message
    assert "check PW_API_KEY" in message and "pwt_wrong" not in message


def test_forbidden(pw_api: PwApiEmulator, pw_env) -> None:
    pw_api.status = 403
    assert "/api/clusters: HTTP 403, the API key may not do this: Forbidden" in failure()


def test_rate_limit_then_success_is_retried(pw_api: PwApiEmulator, pw_env) -> None:
    pw_api.fail_next = [429, 503]
    pw_api.retry_after = "0"
    assert len(listing(backoff=0.01)) == 4
    assert pw_api.hits["/api/clusters"] == 3  # 429, 503, then a 404: an older platform
    assert pw_api.hits["/api/compute/clusters"] == 1


def test_server_error_gives_up_after_retries(pw_api: PwApiEmulator, pw_env) -> None:
    pw_api.status = 500
    message = failure(retries=2, backoff=0.01)
    assert "/api/clusters: HTTP 500 Internal Server Error (gave up after 3 attempts)" in message
    assert pw_api.hits["/api/clusters"] == 3


def test_slow_api_times_out(pw_api: PwApiEmulator, pw_env) -> None:
    pw_api.delay = 1.0
    assert "/api/clusters: no answer within 0.2 s (gave up after 1 attempts)" in failure(
        timeout=0.2, retries=0
    )


def test_api_down(pw_env) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    message = failure(host=f"http://127.0.0.1:{port}", retries=1, backoff=0)
    assert f"GET http://127.0.0.1:{port}/api/clusters: cannot connect" in message


def test_host_without_scheme_means_https(pw_api: PwApiEmulator, pw_env) -> None:
    host = pw_api.url.removeprefix("http://")
    message = failure(host=host, retries=0)
    assert f"GET https://{host}/api/clusters: cannot connect" in message


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (
            "ftp://pw.example.org",
            "host: 'ftp://pw.example.org' is not a host name or an http(s) URL",
        ),
        ("https://me:pw@pw.example.org", "host: put no credentials or query string in the host"),
    ],
)
def test_bad_host(pw_env, host: str, expected: str) -> None:
    assert expected in failure(host=host)


def test_no_host(pw_env, monkeypatch) -> None:
    monkeypatch.delenv("PW_PLATFORM_HOST")
    assert "no platform host: set PW_PLATFORM_HOST or sources.pw.host" in failure()


def test_malformed_json(pw_api: PwApiEmulator, pw_env) -> None:
    pw_api.malformed = True
    assert "/api/compute/clusters: the answer is not valid JSON" in failure()


def test_not_a_list(pw_api: PwApiEmulator, pw_env) -> None:
    pw_api.v3_items = {"clusters": []}
    assert "/api/compute/clusters: expected a list of clusters" in failure()


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"namespace": "x"}, "cluster #1: field 'name': Field required"),
        ({"name": 5}, "cluster #1: field 'name': Input should be a valid string"),
        ({"name": ""}, "cluster #1: field 'name': '' is not allowed here: use letters, digits"),
        (
            {"name": "p", "variables": {"partition_config": "compute"}},
            "cluster #1 ('p'): field 'variables.partition_config': Input should be a valid list",
        ),
        ({"name": "q", "controllerIp": 42}, "cluster #1 ('q'): field 'controllerIp'"),
        ("gcpslurmv2", "cluster #1: the record: Input should be a valid dictionary"),
    ],
)
def test_bad_record_is_skipped_and_named(pw_api: PwApiEmulator, pw_env, item, expected) -> None:
    pw_api.v3_items = [{"name": "ok"}, item, {"name": "also-ok"}]
    result = parsed()
    assert [c.name for c in result.clusters] == ["ok", "also-ok"]
    [problem] = map(str, result.problems)
    assert problem.startswith(f"inventory source 'pw': /api/compute/clusters {expected}")
    assert problem.endswith("; record skipped")


def test_duplicate_name_keeps_the_first(pw_api: PwApiEmulator, pw_env) -> None:
    pw_api.v3_items = [
        {"name": "twin", "controllerIp": "192.0.2.1"},
        {"name": "twin", "controllerIp": "192.0.2.2"},
    ]
    result = parsed()
    assert [c.public_address for c in result.clusters] == ["192.0.2.1"]
    assert [str(p) for p in result.problems] == [
        "inventory source 'pw': /api/compute/clusters cluster #1 ('twin'): name 'twin' is already "
        "used by /api/compute/clusters cluster #0 ('twin'); record skipped"
    ]


def test_interface_name_as_private_ip_is_noted(pw_api: PwApiEmulator, pw_env) -> None:
    result = parsed()
    assert result.problems == []
    assert result.notes == [
        "inventory note (pw): /api/compute/clusters cluster #2 ('onprem'): variables.privateIp "
        "'ens5' is not an IP address, left out: Parsl workers will be given the cluster's "
        "public address"
    ]


def test_many_bad_records_are_counted_not_listed(pw_api: PwApiEmulator, pw_env) -> None:
    pw_api.v3_items = [{"name": f"bad {i}"} for i in range(25)] + [{"name": "good"}]
    result = parsed()
    assert [c.name for c in result.clusters] == ["good"]
    messages = [str(p) for p in result.problems]
    assert len(messages) == MAX_REPORTED + 1
    assert messages[-1] == f"inventory source 'pw': {25 - MAX_REPORTED} more records skipped"


def test_trickling_answer_is_cut_at_the_deadline(pw_api: PwApiEmulator, pw_env) -> None:
    """requests' timeout is per read: a server sending a byte every 50 ms never trips it. The
    deadline does, and the socket is closed then, not when the answer would have ended."""
    pw_api.trickle = 0.05
    started = time.monotonic()
    message = failure(deadline=1, timeout=5)
    took = time.monotonic() - started
    assert message == (
        f"inventory source 'pw': GET {pw_api.url}/api/clusters: no complete answer "
        "within 1 s (option 'deadline')"
    )
    assert 1 <= took < 4  # the deadline, with room for a loaded machine
    for _ in range(40):  # the emulator notices at its next write
        if pw_api.hangups:
            break
        time.sleep(0.05)
    assert pw_api.hangups and pw_api.hangups[0] - started < 4


def test_retries_stop_at_the_deadline(pw_api: PwApiEmulator, pw_env) -> None:
    pw_api.status = 503
    pw_api.retry_after = "20"
    started = time.monotonic()
    message = failure(deadline=0.5, retries=5)
    assert "no complete answer within 0.5 s (option 'deadline')" in message
    assert time.monotonic() - started < 5  # not the 20 s Retry-After
    assert pw_api.hits["/api/clusters"] == 1  # the wait for Retry-After hit the deadline


# --- today's API (GET /api/clusters), as the SDK's models shape it --------------------------

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOvCGbDrpCEMhx1mCTc0eN3fJw4cDC3ZpD8IzDmaE9ky"
RSA_KEY = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7testkeymaterial0123456789abcdefABCDEF"


def current_clusters() -> list[dict]:
    return [
        pw_cluster("gcpnow", host_keys=[HOST_KEY + " root@controller", "SHA256:abcdefghijk"]),
        pw_cluster("awsnow", type="pclusterv2", status="off", ip="198.51.100.7"),
        pw_cluster("proxied", ip="10.9.8.7", host_keys=[RSA_KEY], proxied=True),
        pw_cluster("asked", ip="192.0.2.44", host_keys=[HOST_KEY]),
    ]


@pytest.fixture
def current_api(pw_env, monkeypatch) -> Iterator[PwApiEmulator]:
    with PwApiEmulator(api_key=PW_KEY, current=True) as api:
        api.clusters.extend(current_clusters())
        monkeypatch.setenv("PW_PLATFORM_HOST", api.url)
        yield api


def test_current_api_clusters(current_api: PwApiEmulator) -> None:
    clusters = listing()
    assert list(clusters) == ["gcpnow", "awsnow", "proxied", "asked"]
    now = clusters["gcpnow"]
    assert (now.api, now.status, now.public_address, now.user) == (
        "current",
        "on",
        "34.171.136.114",
        "alice",  # user from connectionString alice@...
    )
    assert (now.cloud, now.region, now.namespace) == ("gcp", "us-central1", "alice")
    assert now.host_keys == (HOST_KEY,)  # comment dropped, fingerprint not pinnable
    off = clusters["awsnow"]
    assert (off.status, off.address, off.cloud, off.host_keys) == ("off", None, "aws", ())
    proxied = clusters["proxied"]
    assert (proxied.needs_proxy, proxied.proxy) == (True, None)
    assert clusters["asked"].host_keys == (HOST_KEY,)
    assert current_api.hits["/api/clusters"] == 1 and current_api.hits["/api/compute/clusters"] == 0
    assert current_api.hits["/api/ssh/host-keys"] == 0  # every on cluster listed its keys
    assert current_api.hits["/api/auth/session"] == 1  # the off one has no connectionString
    assert off.user == "alice"
    assert not current_api.key_in_url and current_api.unauthorized == 0


def test_host_keys_endpoint_fills_in(current_api: PwApiEmulator) -> None:
    current_api.current_items = [current_view(c) for c in current_api.clusters]
    del current_api.current_items[0]["sshHostKeys"]
    asked = listing()["gcpnow"]
    assert asked.host_keys == (HOST_KEY,)
    assert current_api.hits["/api/ssh/host-keys"] == 1


def test_proxied_cluster_without_proxy_is_noted(current_api: PwApiEmulator) -> None:
    result = parsed()
    assert result.notes == [
        "inventory note (pw): /api/clusters cluster #2 ('proxied'): the platform proxies ssh to "
        "it (shouldPlatformProxy): set sources.pw.proxy_jump or sources.pw.proxy_command to "
        "reach it"
    ]
    proxied = {c.name: c for c in parsed(proxy_jump="me@jump.example.org").clusters}["proxied"]
    assert proxied.proxy == "ProxyJump=me@jump.example.org"


def test_host_vars_pin_the_keys_and_name_the_proxy(current_api: PwApiEmulator, tmp_path) -> None:
    clusters = {c.name: c for c in parsed(proxy_command="pw ssh --proxy %h").clusters}
    proxied = clusters["proxied"]
    known_hosts = pin_host_keys(proxied)
    assert known_hosts is not None
    assert known_hosts.read_text() == f"10.9.8.7 {RSA_KEY}\n"
    assert known_hosts.stat().st_mode & 0o777 == 0o600
    facts = host_vars(proxied, known_hosts)
    assert facts["pwrun_host_keys"] == [RSA_KEY]
    target = ssh_target("proxied", facts)
    assert target.known_hosts == str(known_hosts)
    assert target.options == ("ProxyCommand=pw ssh --proxy %h",)
    assert pin_host_keys(clusters["awsnow"]) is None  # off: no address, no keys
    assert "ansible_ssh_common_args" not in host_vars(clusters["awsnow"], None)


@pytest.mark.parametrize("status", list(GeneralClusterStatus))
def test_status_mapping(current_api: PwApiEmulator, status: GeneralClusterStatus) -> None:
    item = current_view(current_api.clusters[0])
    current_api.current_items = [dict(item, status=status.value)]
    [cluster] = parsed().clusters
    assert cluster.status == ("on" if status.value in ("on", "active") else "off")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("sshHostKeys", [HOST_KEY + "\n@cert-authority * " + RSA_KEY], "field 'sshHostKeys.0'"),
        ("sshHostKeys", ["ssh-ed25519 not*base64"], "field 'sshHostKeys.0'"),
        ("connectionString", "-oProxyCommand=x@1.2.3.4", "field 'connectionString'"),
        ("status", "exploded", "field 'status'"),
        ("shouldPlatformProxy", "yes please", "field 'shouldPlatformProxy'"),
    ],
)
def test_hostile_current_record_is_skipped(current_api, field, value, expected) -> None:
    item = current_view(current_api.clusters[0])
    current_api.current_items = [
        dict(item, **{field: value}),
        current_view(current_api.clusters[1]),
    ]
    result = parsed()
    assert [c.name for c in result.clusters] == ["awsnow"]
    [problem] = map(str, result.problems)
    assert f"/api/clusters cluster #0 ('gcpnow'): {expected}" in problem


def test_auto_tries_newest_first(pw_api: PwApiEmulator, pw_env) -> None:
    assert listing(api="v3")["gcpslurmv2"].api == "v3"
    pw_api.hits.clear()
    pw_api.v3 = False
    clusters = listing()
    assert {c.api for c in clusters.values()} == {"legacy"}
    assert [
        pw_api.hits[p] for p in ("/api/clusters", "/api/compute/clusters", "/api/resources")
    ] == [1, 1, 1]


def encoded(host: str) -> str:
    return base64.urlsafe_b64encode(host.encode()).decode().rstrip("=")


def jwt(claims: dict) -> str:
    return (
        ".".join(encoded(json.dumps(part)) for part in ({"alg": "HS256", "typ": "JWT"}, claims))
        + ".c2lnbmF0dXJl"
    )


@pytest.mark.parametrize("kind", ["pwt_", "pwut_", "jwt"])
def test_host_from_the_credential(pw_env, monkeypatch, kind: str) -> None:
    """No host configured: it comes from the credential, decoded by the SDK."""
    monkeypatch.delenv("PW_PLATFORM_HOST")
    with PwApiEmulator(current=True) as api:
        credential = {
            "pwt_": f"pwt_{encoded(api.url)}.s3cr3t",
            "pwut_": f"pwut_{encoded(api.url)}.s3cr3t",
            "jwt": jwt({"platform_host": api.url, "sub": "alice"}),
        }[kind]
        api.api_key = credential  # Basic for the pwt_ key, Bearer for the tokens
        api.clusters.extend(current_clusters())
        monkeypatch.setenv("PW_API_KEY", credential)
        assert len(listing()) == 4
        assert api.unauthorized == 0 and api.hits["/api/clusters"] == 1


def test_credential_naming_no_host(pw_env, monkeypatch) -> None:
    monkeypatch.delenv("PW_PLATFORM_HOST")
    message = failure()
    assert (
        "no platform host: set PW_PLATFORM_HOST or sources.pw.host (the credential names none)"
        in message
    )


def test_lone_proxy_settings() -> None:
    with pytest.raises(ValueError, match="give proxy_jump or proxy_command, not both"):
        Options(proxy_jump="a", proxy_command="b")
    with pytest.raises(ValueError, match="one line of printable text"):
        Options(proxy_command="nc %h %p\nProxyCommand evil")
