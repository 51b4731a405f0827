"""The inventory file: valid files load, every bad one is named by file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from pwrun.errors import PwrunError
from pwrun.inventory.config import load_config
from pwrun.inventory.pw import Options as PwOptions


def test_valid_file_loads_sources_in_kind_order(write_inventory) -> None:
    path = write_inventory(
        "plugin: pwrun\nstrict_sources: true\nsources:\n  pw:\n    host: pw.example.org\n"
        "    timeout: 3\n    deadline: 20\nkeyed_groups: [{key: pwrun_cloud, prefix: cloud}]\n"
        "cache: true\n"
    )
    config = load_config(path)
    assert config.strict_sources is True
    assert list(config.sources) == ["pw"]
    options = config.sources["pw"]
    assert isinstance(options, PwOptions)
    assert (options.host, options.timeout, options.api) == ("pw.example.org", 3.0, "auto")
    assert options.deadline == 20.0


def test_strict_is_only_ansibles(write_inventory) -> None:
    """`strict` (compose/groups/keyed_groups errors) no longer makes source problems fatal."""
    config = load_config(write_inventory("plugin: pwrun\nstrict: true\nsources:\n  pw:\n"))
    assert config.strict_sources is False


def test_source_without_options_gets_defaults(write_inventory) -> None:
    config = load_config(write_inventory("plugin: pwrun\nsources:\n  pw:\n"))
    assert config.sources["pw"] == PwOptions()
    assert config.strict_sources is False
    assert config.sources["pw"].deadline == 60.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plugin: pwrun\nsourcse:\n  pw:\n", "sourcse: unknown option; valid options: plugin"),
        ("plugin: pwrun\nsources:\n  oci: {}\n", "sources.oci: unknown source; known sources: pw"),
        ("plugin: pwrun\nsources:\n  pw: {hots: x}\n", "sources.pw.hots: unknown option"),
        ("plugin: pwrun\nsources:\n  pw: {timeout: soon}\n", "sources.pw.timeout: Input should"),
        ("plugin: pwrun\nsources:\n  pw: {retries: -1}\n", "sources.pw.retries:"),
        ("plugin: pwrun\nsources:\n  pw: [a]\n", "sources.pw: Input should be a valid dict"),
        ("plugin: pwrun\nsources: {}\n", "sources: Dictionary should have at least 1 item"),
        ("plugin: other\nsources:\n  pw:\n", "plugin: Input should be 'pwrun'"),
        ("plugin: pwrun\nstrict: maybe\nsources:\n  pw:\n", "strict: Input should be a valid bool"),
        (
            "plugin: pwrun\nstrict_sources: 2\nsources:\n  pw:\n",
            "strict_sources: Input should be a valid bool",
        ),
        ("plugin: pwrun\nsources:\n  pw: {deadline: 0}\n", "sources.pw.deadline: Input should be"),
        (
            "plugin: pwrun\nsources:\n  aws: {regions: [r], user: '-oProxyCommand=x'}\n",
            "sources.aws.user: Value error, '-oProxyCommand=x' is not allowed here",
        ),
        ("plugin: pwrun\ndate: 2024-02-30\nsources:\n  pw:\n", "a value YAML cannot read: day"),
        ('plugin: pwrun\nsources:\n  "a\\nb":\n', "sources.'a\\nb': unknown source"),
        (
            "plugin: pwrun\nsources:\n  pw: {host: [unclosed\n",
            "not valid YAML at line 4: expected ',' or ']'",
        ),
        ("- plugin\n", "expected a mapping"),
        ("", "expected a mapping"),
    ],
)
def test_bad_file_names_file_and_field(write_inventory, text: str, expected: str) -> None:
    path = write_inventory(text)
    with pytest.raises(PwrunError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "Traceback" not in message


def test_file_name_must_end_in_pwrun_yml(write_inventory) -> None:
    path = write_inventory("plugin: pwrun\nsources:\n  pw:\n", name="clusters.yml")
    with pytest.raises(PwrunError, match=r"must end in pwrun\.yml or pwrun\.yaml"):
        load_config(path)
    assert load_config(path.rename(path.with_name("site.pwrun.yaml"))).sources


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.pwrun.yml"
    with pytest.raises(PwrunError, match=rf"{path}: cannot read the inventory file"):
        load_config(path)
