"""The executors file: validation names file, label and field; parsl_utils' format is read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pwrun.errors import PwrunError
from pwrun.parslcfg.executors import load_executors


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_file_is_read_with_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "executors.yml", "map:\n  site: site-a\n  partition: compute\n")
    spec = load_executors(path)["map"]
    assert (spec.site, spec.partition, spec.provider, spec.max_blocks) == (
        "site-a", "compute", "slurm", 1,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("map:\n  site: a\n  max_blockz: 2\n", "executors.yml: map.max_blockz: Extra inputs"),
        ("map:\n  site: a\n  walltime: ten\n", "executors.yml: map.walltime: String should match"),
        ("map:\n  partition: x\n", "executors.yml: map.site: Field required"),
        ("map: [1, 2]\n", "executors.yml: map: expected a mapping"),
        ("map:\n  site: a\n  env: {'1X': y}\n", "not an environment variable name: '1X'"),
        ("- a\n", "expected a mapping of executor labels"),
        ("map: {site: [}\n", "executors.yml: not valid YAML"),
    ],
)
def test_bad_files_name_the_field(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(PwrunError) as error:
        load_executors(write(tmp_path, "executors.yml", text))
    assert expected in str(error.value)
    assert str(tmp_path) in str(error.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PwrunError, match="cannot read"):
        load_executors(tmp_path / "nope.yml")


def test_parsl_utils_executors_json(tmp_path: Path) -> None:
    """The seed's format: platform-filled fields are ignored, the rest mapped."""
    legacy = {
        "myexecutor_1": {
            "POOL": "gcpslurm2",
            "RUN_DIR": "/home/__USER__/run",
            "NODES": "2",
            "PARTITION": "compute",
            "NTASKS_PER_NODE": "1",
            "WALLTIME": "01:00:00",
            "CONDA_ENV": "parsl-pw",
            "CONDA_DIR": "/contrib/__USER__/miniconda3",
            "WORKER_LOGDIR_ROOT": "/tmp",
            "SSH_CHANNEL_SCRIPT_DIR": "/tmp",
            "CORES_PER_WORKER": "1",
            "INSTALL_CONDA": "false",
            "LOCAL_CONDA_YAML": "./env.yaml",
            "HOST_IP": "34.70.213.231",
            "HOST_USER": "demo",
            "WORKER_PORT_1": "55233",
            "SlurmProvider": {"max_blocks": 3, "init_blocks": 0},
        }
    }
    path = write(tmp_path, "executors.json", json.dumps(legacy))
    spec = load_executors(path)["myexecutor_1"]
    assert spec.site == "gcpslurm2"
    assert spec.nodes_per_block == 2
    assert spec.walltime == "01:00:00"
    assert (spec.max_blocks, spec.init_blocks) == (3, 0)


def test_parsl_utils_unknown_field(tmp_path: Path) -> None:
    path = write(tmp_path, "executors.json", json.dumps({"e": {"POOL": "p", "NODEZ": 1}}))
    with pytest.raises(PwrunError, match="e: unknown field NODEZ"):
        load_executors(path)


def test_local_site_runs_on_this_machine(tmp_path: Path) -> None:
    spec = load_executors(write(tmp_path, "e.yml", "here:\n  site: local\n"))["here"]
    assert spec.provider == "local"
    with pytest.raises(
        PwrunError, match=r"e\.yml: here: provider slurm does not run on site 'local'"
    ):
        load_executors(write(tmp_path, "e.yml", "here:\n  site: local\n  provider: slurm\n"))
    with pytest.raises(PwrunError, match="here: provider local does not run on site 'a'"):
        load_executors(write(tmp_path, "e.yml", "here:\n  site: a\n  provider: local\n"))
