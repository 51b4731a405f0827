"""`pwrun inventory`: the same file as the plugin, a table or JSON, one-line errors."""

from __future__ import annotations

import json

from tests.emulators.pw_api import PwApiEmulator

BASIC = "plugin: pwrun\nsources:\n  pw:\n"


def test_table(pw_api: PwApiEmulator, pwrun_cli, write_inventory) -> None:
    result = pwrun_cli("inventory", str(write_inventory(BASIC)))
    assert result.returncode == 0, result.stderr
    header, *rows = [line for line in result.stdout.splitlines() if "│" in line or "┃" in line]
    assert "name" in header and "scheduler" in header and "location" in header
    gcp = next(row for row in rows if "gcpslurmv2" in row)
    for value in ("34.171.136.114", "alice", "compute,gpu", "gcp/us-central1/us-central1-a"):
        assert value in gcp
    assert any("onprem" in row and "pbs" in row for row in rows)
    assert result.stderr == (  # a note, not a source problem: no "inventory source" prefix
        "warning: inventory note (pw): /api/compute/clusters cluster #2 ('onprem'): "
        "variables.privateIp 'ens5' is not an IP address, left out: Parsl workers will be given "
        "the cluster's public address\n"
    )


def test_json(pw_api: PwApiEmulator, pwrun_cli, write_inventory) -> None:
    result = pwrun_cli("inventory", "--json", str(write_inventory(BASIC)))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["errors"] == []
    [note] = data["notes"]
    assert note.startswith("inventory note (pw): /api/compute/clusters cluster #2 ('onprem'): ")
    clusters = {c["name"]: c for c in data["clusters"]}
    assert set(clusters) == {"gcpslurmv2", "awsoff", "onprem", "bare"}
    assert clusters["onprem"]["address"] == "login.hpc.example.org"
    assert clusters["awsoff"]["status"] == "off" and clusters["gcpslurmv2"]["partitions"] == [
        "compute",
        "gpu",
    ]


def test_failing_source_warns_or_fails_strict(pw_api, pwrun_cli, write_inventory) -> None:
    pw_api.status = 500
    path = str(write_inventory(BASIC + "    retries: 0\n"))
    result = pwrun_cli("inventory", "--json", path)
    assert result.returncode == 0
    assert json.loads(result.stdout)["errors"] == [
        {
            "source": "pw",
            "message": f"inventory source 'pw': GET {pw_api.url}/api/clusters: "
            "HTTP 500 Internal Server Error (gave up after 1 attempts)",
        }
    ]
    assert "warning: inventory source 'pw'" in result.stderr

    strict = pwrun_cli("inventory", "--strict", path)
    assert strict.returncode == 2 and strict.stdout == ""
    assert strict.stderr.startswith("error: inventory source 'pw': GET ")
    assert "Traceback" not in strict.stderr


def test_bad_file_is_one_line(pw_api, pwrun_cli, write_inventory) -> None:
    path = write_inventory("plugin: pwrun\nsources:\n  pw: {timeout: soon}\n")
    result = pwrun_cli("inventory", str(path))
    assert result.returncode == 2
    assert f"error: {path}: sources.pw.timeout: Input should be a valid number" in " ".join(
        result.stderr.split()
    )
    assert "Traceback" not in result.stderr and pw_api.hits.total() == 0


def test_bad_key_never_shown(pw_api, pwrun_cli, write_inventory) -> None:
    result = pwrun_cli("inventory", str(write_inventory(BASIC)), PW_API_KEY="pwt_leaky_value")
    assert "HTTP 401" in result.stderr and "pwt_leaky_value" not in result.stdout + result.stderr


def test_markup_in_values_is_printed_as_text(pw_api, pwrun_cli, write_inventory) -> None:
    free = {"partitions": ["[/]gpu"], "region": "[bold]r"}
    pw_api.v3_items = [{"name": "a[/]b"}, {"name": "ok", "variables": free}]
    result = pwrun_cli("inventory", str(write_inventory(BASIC)))
    assert result.returncode == 0, result.stderr
    assert "cluster #0 ('a[/]b'): field 'name': 'a[/]b' is not allowed" in result.stderr
    assert "[/]gpu" in result.stdout and "[bold]r" in result.stdout


def test_markup_in_a_strict_error_is_printed_as_text(pw_api, pwrun_cli, write_inventory) -> None:
    pw_api.v3_items = [{"name": "a[/]b"}]
    result = pwrun_cli("inventory", "--strict", str(write_inventory(BASIC)))
    assert "Traceback" not in result.stderr
    assert result.returncode == 2 and "'a[/]b' is not allowed" in result.stderr
