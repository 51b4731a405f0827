"""The executors file: validation names file, label and field; parsl_utils' format is read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pwrun import validation
from pwrun.errors import PwrunError
from pwrun.parslcfg.executors import (
    HEARTBEAT_PERIOD,
    LEGACY_CONDA,
    LEGACY_FIELDS,
    LEGACY_IGNORED,
    LEGACY_PROVIDERS,
    ClusterSpec,
    LocalSpec,
    MpiSpec,
    OwnEnv,
    PbsSpec,
    SlurmSpec,
    by_scheduler,
    default_provider,
    load_executors,
    load_executors_file,
)

ROOT = Path(__file__).resolve().parents[2]


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
    # CONDA_DIR + CONDA_ENV: the user's own env, used as is (INSTALL_CONDA false)
    assert spec.own_env() == OwnEnv("conda", "/contrib/__USER__/miniconda3", "parsl-pw")


def test_parsl_utils_unknown_field(tmp_path: Path) -> None:
    path = write(tmp_path, "executors.json", json.dumps({"e": {"POOL": "p", "NODEZ": 1}}))
    with pytest.raises(PwrunError, match=r"executors\.json: e\.NODEZ: unknown field"):
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


def error(tmp_path: Path, name: str, text: str) -> str:
    """The one-line PwrunError a bad file gives, checked to start with the file's path."""
    path = write(tmp_path, name, text)
    with pytest.raises(PwrunError) as raised:
        load_executors(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and len(message.splitlines()) == 1, message
    return message.removeprefix(f"{tmp_path}/")


def test_local_site_takes_the_fields_that_apply_there(tmp_path: Path) -> None:
    text = (
        "here:\n  site: local\n  env: {FOO: bar}\n  worker_init: echo hi\n  max_blocks: 2\n"
        "  init_blocks: 0\n  min_blocks: 1\n  parallelism: 0.5\n  cores_per_worker: 2\n"
        "  max_workers_per_node: 3\n"
    )
    spec = load_executors(write(tmp_path, "x.yml", text))["here"]
    assert isinstance(spec, LocalSpec)
    assert (spec.env, spec.worker_init, spec.max_workers_per_node) == ({"FOO": "bar"}, "echo hi", 3)
    assert (spec.init_blocks, spec.min_blocks, spec.max_blocks, spec.parallelism) == (0, 1, 2, 0.5)
    assert isinstance(
        load_executors(write(tmp_path, "y.yml", "map:\n  site: a\n"))["map"], ClusterSpec
    )


@pytest.mark.parametrize(
    "field",
    sorted((set(SlurmSpec.model_fields) | set(PbsSpec.model_fields)) - set(LocalSpec.model_fields)),
)
def test_a_cluster_field_on_the_local_site_is_named(tmp_path: Path, field: str) -> None:
    value = {"nodes_per_block": "2", "walltime": "'01:00:00'", "run_dir": "/x"}.get(field, "x")
    text = f"gpu:\n  site: local\n  {field}: {value}\n"
    assert (
        error(tmp_path, "x.yml", text)
        == f"x.yml: gpu.{field}: not allowed on site local (a cluster field)"
    )


def test_cluster_fields_on_the_local_site_are_all_named_as_written(tmp_path: Path) -> None:
    text = json.dumps(
        {"gpu": {"POOL": "local", "PARTITION": "x", "SlurmProvider": {"walltime": "1:00:00"}}}
    )
    assert error(tmp_path, "x.json", text) == (
        "x.json: gpu.PARTITION: not allowed on site local (a cluster field); "
        "gpu.SlurmProvider.walltime: not allowed on site local (a cluster field)"
    )
    assert "x.yml: gpu.nope: Extra inputs are not permitted" in error(
        tmp_path, "x.yml", "gpu:\n  site: local\n  nope: 1\n"
    )


def test_pbs_labels_take_queue_account_and_select(tmp_path: Path) -> None:
    text = (
        "t:\n  site: hpc\n  provider: torque\n  queue: batch\n  account: proj-1\n"
        "p:\n  site: hpc\n  queue: workq@server\n  select_options: 'ngpus=1:mem=4gb'\n"
    )
    specs = load_executors(write(tmp_path, "x.yml", text))
    t, p = specs["t"], specs["p"]
    assert isinstance(t, PbsSpec) and (t.provider, t.queue, t.account) == (
        "torque",
        "batch",
        "proj-1",
    )
    # no provider: PBS fields make a PBS entry until the site's facts say which
    assert isinstance(p, PbsSpec) and (p.provider, p.select_options) == (
        "pbspro",
        "ngpus=1:mem=4gb",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  provider: torque\n  partition: c\n",
         "x.yml: m.partition: not allowed with a PBS provider (a Slurm field: PBS takes queue)"),
        ("  provider: slurm\n  queue: c\n",
         "x.yml: m.queue: not allowed with provider slurm (a PBS field: give provider pbspro or "
         "torque)"),
        ("  partition: c\n  queue: a\n",  # account is both families' now
         "x.yml: m.partition: not allowed with a PBS provider"),
        ("  provider: torque\n  select_options: ngpus=1\n",
         "x.yml: m.select_options: only for provider pbspro (Torque has no select)"),
        ("  queue: 'q -W x'\n", "x.yml: m.queue: 'q -W x' is not allowed here"),
        ("  provider: pbspro\n  account: '$(id)'\n",
         "x.yml: m.account: '$(id)' is not allowed here"),
        ("  select_options: \"ngpus=1\\n#PBS -W x\"\n",
         "x.yml: m.select_options: 'ngpus=1\\n#PBS -W x' is not allowed here"),
        ("  provider: pbs\n", "x.yml: m.provider: Input should be 'local', 'slurm', 'pbspro'"),
    ],
)  # fmt: skip
def test_fields_of_the_other_family_are_named(tmp_path: Path, text: str, expected: str) -> None:
    assert error(tmp_path, "x.yml", "m:\n  site: hpc\n" + text).startswith(expected)


def test_the_sites_scheduler_chooses_the_provider(tmp_path: Path) -> None:
    path = write(
        tmp_path, "x.yml", "a:\n  site: hpc\nb:\n  site: hpc\n  queue: q\nc:\n  site: local\n"
    )
    specs = load_executors(path)
    assert [s.provider for s in specs.values()] == ["slurm", "pbspro", "local"]
    resolved = by_scheduler(specs, {"hpc": "torque"}, "x.yml")
    assert [(type(s), s.provider) for s in resolved.values()] == [(PbsSpec, "torque")] * 2 + [
        (LocalSpec, "local")
    ]
    assert by_scheduler(resolved, {"other": "slurm"}, "x.yml") == resolved
    with pytest.raises(PwrunError) as raised:
        by_scheduler(specs, {"hpc": "slurm"}, "x.yml")
    assert str(raised.value) == (
        "x.yml: b.queue: not allowed with provider slurm (a PBS field: give provider pbspro or "
        "torque)"
    )
    given = load_executors(write(tmp_path, "y.yml", "a:\n  site: hpc\n  provider: slurm\n"))
    with pytest.raises(PwrunError) as raised:
        by_scheduler(given, {"hpc": "pbspro"}, "y.yml")
    assert str(raised.value) == (
        "y.yml: a.provider: site 'hpc' runs PBS (its cluster facts): use provider pbspro, "
        "or leave provider out"
    )
    legacy = {"m": {"POOL": "hpc", "PARTITION": "c"}}
    specs = load_executors(write(tmp_path, "e.json", json.dumps(legacy)))
    with pytest.raises(PwrunError, match=r"^e\.json: m\.PARTITION: not allowed with a PBS"):
        by_scheduler(specs, {"hpc": "torque"}, "e.json")


@pytest.mark.parametrize(
    ("facts", "provider"),
    [
        ({}, "slurm"),
        ({"pwrun_scheduler": "slurm"}, "slurm"),
        ({"pwrun_scheduler": "pbs"}, "pbspro"),
        ({"pwrun_scheduler": "pbs", "pwrun_pbs_flavour": "pbspro"}, "pbspro"),
        ({"pwrun_scheduler": "pbs", "pwrun_pbs_flavour": "torque"}, "torque"),
    ],
)
def test_default_provider_from_facts(facts: dict[str, str], provider: str) -> None:
    assert default_provider(facts) == provider


def test_parsl_utils_pbspro_provider(tmp_path: Path) -> None:
    entry = {"POOL": "hpc", "NODES": "2", "PBSProProvider": {"queue": "workq", "account": "a",
             "select_options": "ngpus=1", "max_blocks": 3, "launcher": "mpiexec"}}  # fmt: skip
    spec = load_executors(write(tmp_path, "executors.json", json.dumps({"m": entry})))["m"]
    assert isinstance(spec, PbsSpec)
    assert (spec.provider, spec.queue, spec.account, spec.nodes_per_block, spec.max_blocks) == (
        "pbspro", "workq", "a", 2, 3,
    )  # fmt: skip
    assert spec.launcher_name() == "mpiexec"
    idle = {"m": {**entry, "PBSProProvider": {"queue": "workq"}}}  # 2 nodes, Parsl's default
    assert error(tmp_path, "executors.json", json.dumps(idle)) == (
        "executors.json: m.launcher: a PBS block of 2 nodes needs a launcher: mpiexec starts a "
        "worker pool on every node (over $PBS_NODEFILE); single_node uses the first node only"
    )
    both = {"m": {**entry, "SlurmProvider": {}}}
    assert error(tmp_path, "executors.json", json.dumps(both)) == (
        "executors.json: m.SlurmProvider: provider is already given by PBSProProvider"
    )
    cpus = {"m": {"POOL": "hpc", "PBSProProvider": {"cpus_per_node": 4}}}
    assert error(tmp_path, "executors.json", json.dumps(cpus)) == (
        "executors.json: m.PBSProProvider.cpus_per_node: not supported by pwrun"
    )
    slurm = {"m": {"POOL": "hpc", "PARTITION": "c", "PBSProProvider": {}}}
    assert error(tmp_path, "executors.json", json.dumps(slurm)).startswith(
        "executors.json: m.PARTITION: not allowed with a PBS provider"
    )


LABEL_RULE = "label not allowed: use letters, digits, '_' and '-', starting with a letter"


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ('"x$(touch$IFS.p)"', "'x$(touch$IFS.p)'"),
        ('".."', "'..'"),
        ("a/b", "'a/b'"),
        ('"{x}"', "'{x}'"),
        ("_parsl_internal", "'_parsl_internal'"),
        ('""', "''"),
        ('"a\\nb"', "'a\\nb'"),
        ("x" * 64, repr("x" * 64)),
        ("1", "1"),
        ("null", "None"),
        ("true", "True"),
    ],
)
def test_labels_must_be_plain_names(tmp_path: Path, key: str, shown: str) -> None:
    assert error(tmp_path, "x.yml", f"{key}:\n  site: a\n").startswith(
        f"x.yml: {shown}: {LABEL_RULE}"
    )


def test_label_rule_applies_to_executors_json(tmp_path: Path) -> None:
    text = json.dumps({"a b": {"POOL": "p"}})
    assert error(tmp_path, "executors.json", text).startswith(
        f"executors.json: 'a b': {LABEL_RULE}"
    )


def test_longest_label_is_read(tmp_path: Path) -> None:
    label = "A" + "-_9" * 20 + "zz"
    assert list(load_executors(write(tmp_path, "x.yml", f"{label}:\n  site: a\n"))) == [label]


@pytest.mark.parametrize("run_dir", ["'{x}'", "'/a b'", "$HOME/x", "/a/../b", "~/..", "runs", "''"])
def test_run_dir_is_a_plain_remote_path(tmp_path: Path, run_dir: str) -> None:
    text = f"map:\n  site: a\n  run_dir: {run_dir}\n"
    assert "x.yml: map.run_dir: " in error(tmp_path, "x.yml", text)


def test_legacy_run_dir_is_named_as_written(tmp_path: Path) -> None:
    text = json.dumps({"map": {"POOL": "p", "RUN_DIR": "/x/../y"}})
    assert "executors.json: map.RUN_DIR: '/x/../y' is not allowed here" in error(
        tmp_path, "executors.json", text
    )


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"NODES": None}, "map.NODES: null is not allowed"),
        ({"POOL": None}, "map.POOL: null is not allowed"),
        ({"PARTITION": None}, "map.PARTITION: null is not allowed"),
        ({"SlurmProvider": None}, "map.SlurmProvider: null is not allowed"),
        ({"SlurmProvider": {"max_blocks": None}}, "map.SlurmProvider.max_blocks: null is not"),
        ({"SlurmProvider": "max_blocks"}, "map.SlurmProvider: expected a mapping"),
        ({"SlurmProvider": {"channel": 1}}, "map.SlurmProvider.channel: not supported"),
        ({"SlurmProvider": {"max_blocks": "3"}}, "map.SlurmProvider.max_blocks: Input should be"),
        ({"SlurmProvider": {"max_blocks": 2.0}}, "map.SlurmProvider.max_blocks: Input should be"),
        ({"NODES": "two"}, "map.NODES: Input should be a valid integer"),
        ({"NODES": True}, "map.NODES: Input should be a valid integer"),
        ({"NODES": 2.7}, "map.NODES: Input should be a valid integer"),
        ({"NODES": "2.7"}, "map.NODES: Input should be a valid integer"),
        ({"NODES": "0"}, "map.NODES: Input should be greater than or equal to 1"),
        ({"CORES_PER_WORKER": True}, "map.CORES_PER_WORKER: Input should be a valid number"),
        ({"CORES_PER_WORKER": "nan"}, "map.CORES_PER_WORKER: Input should be a finite number"),
        ({"CORES_PER_WORKER": 1e400}, "map.CORES_PER_WORKER: Input should be a finite number"),
        ({"CORES_PER_WORKER": "a lot"}, "map.CORES_PER_WORKER: Input should be a valid number"),
        ({"WALLTIME": 3600}, "map.WALLTIME: Input should be a valid string"),
        ({"POOL": "p", "RESOURCE": "q"}, "map.RESOURCE: site is already given by POOL"),
        (
            {"PARTITION": "a", "SlurmProvider": {"partition": "b"}},
            "map.SlurmProvider.partition: partition is already given by PARTITION",
        ),
    ],
)
def test_legacy_values_are_strict(tmp_path: Path, entry: dict[str, object], expected: str) -> None:
    text = json.dumps({"map": {"POOL": "p", **entry}})
    assert error(tmp_path, "executors.json", text).startswith(f"executors.json: {expected}")


def test_legacy_numbers_written_as_text_or_numbers(tmp_path: Path) -> None:
    entry = {"POOL": "p", "NODES": 3, "CORES_PER_WORKER": "0.5", "HOST_IP": None}
    spec = load_executors(write(tmp_path, "executors.json", json.dumps({"m": entry})))["m"]
    assert (spec.nodes_per_block, spec.cores_per_worker) == (3, 0.5)
    entry = {"POOL": "p", "CORES_PER_WORKER": 4}
    assert (
        load_executors(write(tmp_path, "e.json", json.dumps({"m": entry})))["m"].cores_per_worker
        == 4.0
    )


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("nodes_per_block", "true", "Input should be a valid integer"),
        ("nodes_per_block", "2.7", "Input should be a valid integer"),
        ("nodes_per_block", "'2'", "Input should be a valid integer"),
        ("max_blocks", "2.0", "Input should be a valid integer"),
        ("init_blocks", "false", "Input should be a valid integer"),
        ("max_workers_per_node", "'4'", "Input should be a valid integer"),
        ("cores_per_worker", "true", "Input should be a valid number"),
        ("cores_per_worker", "'1'", "Input should be a valid number"),
        ("cores_per_worker", ".nan", "Input should be a finite number"),
        ("cores_per_worker", "1.0e+400", "Input should be a finite number"),
        ("cores_per_worker", "1e400", "Input should be a valid number"),  # YAML 1.1: a string
        ("parallelism", ".inf", "Input should be a finite number"),
        ("parallelism", "0", "Input should be greater than 0"),
        ("walltime", "3600", "Input should be a valid string"),
        ("partition", "[a]", "Input should be a valid string"),
    ],
)
def test_yaml_values_are_strict(tmp_path: Path, field: str, value: str, expected: str) -> None:
    text = f"map:\n  site: a\n  {field}: {value}\n"
    assert error(tmp_path, "x.yml", text) == f"x.yml: map.{field}: {expected}"


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            "kind: mpi\n  max_workers_per_node: 2",
            "map.max_workers_per_node: not allowed with kind: mpi",
        ),
        ("kind: mpi\n  gpus_per_node: 1", "map.gpus_per_node: not allowed with kind: mpi"),
        ("mpi_launcher: srun", "map.mpi_launcher: allowed with kind: mpi only"),
        ("max_workers_per_block: 1", "map.max_workers_per_block: allowed with kind: mpi only"),
        ("kind: gpu", "map.kind: Input should be 'htex' or 'mpi'"),
        (
            "kind: mpi\n  launcher: srun",
            "map.launcher: kind: mpi starts its pool with the simple launcher only",
        ),
        (
            "kind: mpi\n  max_workers_per_block: 2",
            "map: max_workers_per_block (2) is more than nodes_per_block (1)",
        ),
        ("kind: mpi\n  mpi_launcher: aprun", "map.mpi_launcher: Input should be 'srun' or"),
        ("launcher: aprun", "map.launcher: Input should be 'srun', 'single_node', 'mpiexec'"),
        ("account: 'a b'", "map.account: String should match pattern"),
        ("qos: 'hi\\n#SBATCH --x'", "map.qos: String should match pattern"),
        ("partition: 'a;b'", "map.partition: String should match pattern"),
        ("constraint: 'a b'", "map.constraint: String should match pattern"),
        ("exclusive: 1", "map.exclusive: Input should be a valid boolean"),
        ("exclusive: 'yes'", "map.exclusive: Input should be a valid boolean"),
        ("mem_per_node: 0", "map.mem_per_node: Input should be greater than or equal to 1"),
        ("mem_per_node: 1.5", "map.mem_per_node: Input should be a valid integer"),
        ("cores_per_node: 4097", "map.cores_per_node: Input should be less than or equal"),
        ("gpus_per_node: 65", "map.gpus_per_node: Input should be less than or equal to 64"),
    ],
)
def test_launcher_resource_and_mpi_fields_are_checked(
    tmp_path: Path, lines: str, expected: str
) -> None:
    assert error(tmp_path, "x.yml", f"map:\n  site: a\n  {lines}\n").startswith(
        f"x.yml: {expected}"
    )


def test_cluster_resources_on_site_local_are_named(tmp_path: Path) -> None:
    for field, value in (("gpus_per_node", "1"), ("kind", "mpi"), ("launcher", "srun")):
        text = f"here:\n  site: local\n  {field}: {value}\n"
        expected = f"x.yml: here.{field}: not allowed on site local (a cluster field)"
        assert error(tmp_path, "x.yml", text) == expected


def test_resources_and_mpi_load(tmp_path: Path) -> None:
    text = (
        "map:\n  site: a\n  partition: a,b\n  account: proj-1\n  qos: high\n"
        "  constraint: '[rack1*2&rack2*4]|gpu'\n  exclusive: true\n  mem_per_node: 64\n"
        "  cores_per_node: 32\n  gpus_per_node: 4\n  nodes_per_block: 2\n"
        "sim:\n  site: a\n  kind: mpi\n  nodes_per_block: 4\n  max_workers_per_block: 2\n"
    )
    specs = load_executors(write(tmp_path, "x.yml", text))
    spec, mpi = specs["map"], specs["sim"]
    assert isinstance(spec, ClusterSpec) and not isinstance(spec, MpiSpec)
    assert (spec.account, spec.constraint, spec.exclusive, spec.gpus_per_node) == (
        "proj-1", "[rack1*2&rack2*4]|gpu", True, 4,
    )  # fmt: skip
    assert spec.launcher_name() == "srun"
    assert isinstance(mpi, MpiSpec) and mpi.launcher_name() == "simple"
    assert (mpi.mpi_launcher, mpi.max_workers_per_block) == ("srun", 2)


def test_parsl_utils_slurm_provider_resources(tmp_path: Path) -> None:
    provider = {"account": "a", "qos": "q", "constraint": "c", "exclusive": False,
                "mem_per_node": 8, "cores_per_node": 4, "gpus_per_node": 1}  # fmt: skip
    legacy = {"e": {"POOL": "p", "SlurmProvider": provider}}
    spec = load_executors(write(tmp_path, "executors.json", json.dumps(legacy)))["e"]
    assert {name: getattr(spec, name) for name in provider} == provider


def test_numbers_of_the_other_kind_where_harmless(tmp_path: Path) -> None:
    text = "map:\n  site: a\n  cores_per_worker: 2\n  parallelism: 1\n  partition: null\n"
    spec = load_executors(write(tmp_path, "x.yml", text))["map"]
    assert (spec.cores_per_worker, spec.parallelism, spec.partition) == (2.0, 1.0, None)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("nodes_per_block", 10_001),
        ("nodes_per_block", 1_000_000),
        ("max_blocks", 10_001),
        ("init_blocks", 10_001),
        ("min_blocks", 10_001),
        ("max_workers_per_node", 4097),
        ("cores_per_worker", 4096.5),
        ("parallelism", 1.01),
        ("walltime", "'1:60:00'"),
        ("walltime", "'1:00:60'"),
        ("walltime", "'10000:00:00'"),
        ("walltime", "'00:00:00'"),
        ("walltime", "'\\uff11:00:00'"),
    ],
)
def test_bounds(tmp_path: Path, field: str, value: object) -> None:
    assert f"x.yml: map.{field}: " in error(
        tmp_path, "x.yml", f"map:\n  site: a\n  {field}: {value}\n"
    )


def test_largest_values_are_read(tmp_path: Path) -> None:
    text = (
        "map:\n  site: a\n  nodes_per_block: 10000\n  max_blocks: 10000\n"
        "  max_workers_per_node: 4096\n  cores_per_worker: 4096\n  walltime: '9999:59:59'\n"
    )
    spec = load_executors(write(tmp_path, "x.yml", text))["map"]
    assert (spec.nodes_per_block, spec.max_workers_per_node, spec.walltime) == (
        10000, 4096, "9999:59:59",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ("{Ä: y}", "map.env: not an environment variable name: 'Ä'"),
        ("{A-B: y}", "map.env: not an environment variable name: 'A-B'"),
        ('{X: "a\\0b"}', "map.env.X: NUL characters are not allowed"),
        ("{X: 1}", "map.env.X: Input should be a valid string"),
    ],
)
def test_env_names_and_values(tmp_path: Path, env: str, expected: str) -> None:
    assert expected in error(tmp_path, "x.yml", f"map:\n  site: a\n  env: {env}\n")


def test_site_is_a_cluster_name(tmp_path: Path) -> None:
    assert "x.yml: map.site: 'a b' is not allowed here" in error(
        tmp_path, "x.yml", "map:\n  site: a b\n"
    )


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("x.yml", "map:\n  site: a\nred:\n  site: b\nmap:\n  site: c\n",
         "x.yml: duplicate key 'map' (line 5)"),
        ("x.yml", "map:\n  site: a\n  site: b\n", "x.yml: duplicate key 'site' (line 3)"),
        ("x.yml", "map: {env: {X: a, X: b}, site: a}\n", "x.yml: duplicate key 'X' (line 1)"),
        ("x.json", '{"map": {"site": "a"}, "map": {"site": "b"}}', "x.json: duplicate key 'map'"),
        ("x.json", '{"m": {"POOL": "a", "NODES": "1", "NODES": "2"}}',
         "x.json: duplicate key 'NODES'"),
    ],
)  # fmt: skip
def test_duplicate_keys(tmp_path: Path, name: str, text: str, expected: str) -> None:
    assert error(tmp_path, name, text) == expected


def test_yaml_merge_keys_may_override(tmp_path: Path) -> None:
    text = (
        "base: &base\n  site: a\n  max_blocks: 2\n"
        "mid: &mid\n  <<: *base\n  max_blocks: 3\n"
        "top:\n  <<: *mid\n  max_blocks: 4\n"
    )
    specs = load_executors(write(tmp_path, "x.yml", text))
    assert [spec.max_blocks for spec in specs.values()] == [2, 3, 4]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("x.yml", b"map:\n  site: \xff\n", "x.yml: not UTF-8 text"),
        ("x.yml", b"map: " + b"9" * 5000 + b"\n", "x.yml: not valid YAML: Exceeds the limit"),
        ("x.json", b'{"m": ' + b"9" * 5000 + b"}", "x.json: not valid JSON: Exceeds the limit"),
        ("x.json", b"[" * 100_000, "x.json: not valid JSON: nested too deeply"),
        ("x.yml", b"[" * 100_000, "x.yml: not valid YAML: nested too deeply"),
        ("x.yml", b"map: !!python/object:os.system {}\n", "x.yml: not valid YAML: could not"),
        (
            "x.yml",
            b"a: 1\n---\nb: 2\n",
            "x.yml: not valid YAML: expected a single document in the stream, but found another",
        ),
    ],
    ids=[
        "utf8",
        "big-yaml-int",
        "big-json-int",
        "deep-json",
        "deep-yaml",
        "python-tag",
        "two-docs",
    ],
)
def test_unreadable_documents(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(PwrunError) as raised:
        load_executors(tmp_path / name)
    message = str(raised.value)
    assert message.removeprefix(f"{tmp_path}/").startswith(expected), message
    assert len(message.splitlines()) == 1


# Property tests: whatever the file holds, load_executors returns specs that pass
# pwrun.validation, or raises one PwrunError line that starts with the file's path.

NASTY = st.sampled_from(
    ["", "..", "a/b", "x$(touch$IFS.p)", "`id`", "{x}", "~", "~/x", "~/../x", "/tmp/r", "a\nb",
     "a\0b", "\u2028", "\x85", "\u00c4", "_parsl_internal", "x" * 64, "map", "local", "a b", "-o",
     "00:30:00", "1:60:00", "2", "2.7", "nan", "1e400", "true", "null", "<<", "NODES"]
)  # fmt: skip
TEXT = st.text(max_size=10) | NASTY
FIELDS = st.sampled_from(
    sorted({*SlurmSpec.model_fields, *PbsSpec.model_fields, *LEGACY_FIELDS, *LEGACY_IGNORED,
            *(key for _, keys in LEGACY_PROVIDERS.values() for key in keys), *LEGACY_PROVIDERS,
            *LEGACY_CONDA, "NODEZ"})
)  # fmt: skip
SCALARS = st.none() | st.booleans() | st.integers(-2, 10_002) | st.integers() | st.floats() | TEXT
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(FIELDS | TEXT, inner, max_size=3),
    max_leaves=6,
)
KEYS = FIELDS | TEXT | st.integers() | st.none() | st.booleans()


def mostly(likely: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`likely` seven times in eight, else `other`."""
    return st.integers(0, 7).flatmap(lambda n: likely if n else other)


def often(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A valid value seven times in eight, else anything."""
    return mostly(valid, VALUES)


SITES = often(st.sampled_from(["a", "local", "site-b.example"]))
TEXTS = often(TEXT)
NEW_ENTRY = st.fixed_dictionaries(
    {"site": SITES},
    optional={
        "nodes_per_block": often(st.integers(1, 10_000)),
        "max_blocks": often(st.integers(1, 10_000)),
        "parallelism": often(st.floats(0.01, 1)),
        "cores_per_worker": often(st.floats(0.1, 4096) | st.integers(1, 4096)),
        "walltime": often(st.sampled_from(["0:00:01", "00:30:00", "9999:59:59"])),
        "run_dir": often(st.sampled_from(["~", "~/runs", "/scratch/u_1/.r+x"])),
        "env": often(st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,5}", fullmatch=True), TEXT)),
        "partition": TEXTS,
        "queue": TEXTS,
        "select_options": TEXTS,
        "provider": often(st.sampled_from(["slurm", "pbspro", "torque"])),
        "worker_init": TEXTS,
        "packages": often(st.lists(st.sampled_from(["numpy", "a-b[x]>=1,<2", "c @ file:///w"]))),
        "python": often(st.sampled_from(["~/env/bin/python", "/usr/bin/python3"])),
        "conda_env": TEXTS,
    },
)
LEGACY_ENTRY = st.fixed_dictionaries(
    {"POOL": SITES},
    optional={
        "NODES": often(st.integers(1, 99).map(str) | st.integers(1, 99)),
        "CORES_PER_WORKER": often(st.sampled_from(["1", "0.5", 4, 2.5])),
        "WALLTIME": often(st.just("01:00:00")),
        "RUN_DIR": often(st.just("/home/__USER__/run")),
        "PARTITION": TEXTS,
        "HOST_IP": VALUES,
        "CONDA_DIR": often(st.just("~/miniconda3")),
        "CONDA_ENV": often(st.just("parsl-1.2")),
        "INSTALL_CONDA": often(st.sampled_from([True, False, "true", "False"])),
        "SlurmProvider": often(
            st.fixed_dictionaries({}, optional={"max_blocks": often(st.integers(1, 5))})
        ),
        "PBSProProvider": often(
            st.fixed_dictionaries({}, optional={"queue": TEXTS, "account": TEXTS})
        ),
    },
)
# Mostly near-valid entries, with a random key now and then.
ENTRIES = st.builds(
    lambda entry, extra: {**entry, **extra},
    NEW_ENTRY | LEGACY_ENTRY,
    st.just({}) | st.dictionaries(KEYS, VALUES, max_size=2),
)
LABELS = mostly(st.from_regex(validation.LABEL, fullmatch=True), KEYS)
DOCUMENTS = mostly(st.dictionaries(LABELS, mostly(ENTRIES, VALUES), max_size=3), VALUES)


def assert_loads_or_one_line_error(path: Path) -> None:
    try:
        specs = load_executors(path)
    except PwrunError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: "), message
        assert message.splitlines() == [message], message
        return
    for label, spec in specs.items():
        validation.label(label)
        if isinstance(spec, ClusterSpec):
            validation.remote_path(spec.run_dir)
            validation.cluster_name(spec.site)
            if isinstance(spec, PbsSpec):  # on qsub's command line: plain words only
                for name in filter(None, (spec.queue, spec.account)):
                    validation.scheduler_name(name)
                validation.pbs_resources(spec.select_options)
        else:
            assert isinstance(spec, LocalSpec) and spec.site == "local"


FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(document=DOCUMENTS)
def test_any_yaml_document(tmp_path_factory: pytest.TempPathFactory, document: Any) -> None:
    path = tmp_path_factory.getbasetemp() / "any.yml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    assert_loads_or_one_line_error(path)


@FAST
@given(document=DOCUMENTS)
def test_any_json_document(tmp_path_factory: pytest.TempPathFactory, document: Any) -> None:
    path = tmp_path_factory.getbasetemp() / "any.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    assert_loads_or_one_line_error(path)


@FAST
@given(
    label=TEXT,
    field=FIELDS | TEXT,
    value=TEXT,
    suffix=st.sampled_from([".yml", ".json"]),
)
def test_any_text(
    tmp_path_factory: pytest.TempPathFactory, label: str, field: str, value: str, suffix: str
) -> None:
    """Unquoted text in the YAML syntax, or pasted into JSON: whatever it parses as."""
    path = tmp_path_factory.getbasetemp() / f"text{suffix}"
    if suffix == ".yml":
        text = f"{label}:\n  site: a\n  {field}: {value}\n"
    else:
        text = f'{{"{label}": {{"POOL": "a", "{field}": {value}}}}}'
    path.write_text(text, encoding="utf-8")
    assert_loads_or_one_line_error(path)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("label.yml", "x$(touch$IFS.p):\n  site: a\n"),
        ("null.json", '{"map": {"POOL": "a", "NODES": null}}'),
        ("twice.yml", "map:\n  site: a\n  site: b\n"),
        ("nodes.yml", "map:\n  site: a\n  nodes_per_block: 1000000\n"),
    ],
)
def test_cli_reports_a_bad_file_in_one_line(tmp_path: Path, name: str, content: str) -> None:
    bad = write(tmp_path, name, content)
    proc = subprocess.run(
        [sys.executable, "-m", "pwrun.cli", "run", str(ROOT / "examples/hello.py"), "-e", str(bad)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PWRUN_HOME": str(tmp_path / "state")},
    )  # fmt: skip
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / ".p").exists() and not (tmp_path / "state" / "runs").exists()


def test_run_settings_and_failover_fields_are_read(tmp_path: Path) -> None:
    text = (
        "pwrun:\n  retries: 3\n"
        "map:\n  site: a\n  fallback: [spare, here]\n  heartbeat_threshold: 60\n"
        "  task_timeout: 1.5\n"
        "spare:\n  site: b\n"
        "here:\n  site: local\n  heartbeat_period: 2\n"
    )
    loaded = load_executors_file(write(tmp_path, "x.yml", text))
    assert loaded.run.retries == 3 and list(loaded.labels) == ["map", "spare", "here"]
    spec = loaded.labels["map"]
    assert (spec.fallback, spec.heartbeat_period, spec.heartbeat_threshold, spec.task_timeout) == (
        ["spare", "here"], HEARTBEAT_PERIOD, 60, 1.5,
    )  # fmt: skip
    assert loaded.labels["spare"].fallback == [] and loaded.labels["spare"].task_timeout is None
    assert load_executors_file(write(tmp_path, "y.yml", "m:\n  site: a\n")).run.retries is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pwrun: {retries: -1}\nm: {site: a}\n", "x.yml: pwrun.retries: Input should be greater"),
        ("pwrun: {retries: '2'}\nm: {site: a}\n", "x.yml: pwrun.retries: Input should be a valid"),
        ("pwrun: {retries: 101}\nm: {site: a}\n", "x.yml: pwrun.retries: Input should be less"),
        ("pwrun: {site: a}\nm: {site: a}\n", "x.yml: pwrun.site: Extra inputs"),
        (
            "pwrun: 3\nm: {site: a}\n",
            "x.yml: pwrun: expected a mapping of run settings ('pwrun' is",
        ),
        ("pwrun: {retries: 1}\n", "x.yml: expected a mapping of executor labels"),
        ("m: {site: a, fallback: [n]}\n", "x.yml: m.fallback.0: no label 'n' in this file (its"),
        ("m: {site: a, fallback: [m]}\n", "x.yml: m.fallback.0: m cannot be its own fallback"),
        ("m: {site: a, fallback: [n, n]}\nn: {site: b}\n", "m.fallback.1: 'n' is already a"),
        ("m: {site: a, fallback: n}\nn: {site: b}\n", "x.yml: m.fallback: Input should be a valid"),
        ("m: {site: a, heartbeat_period: 30}\n", "heartbeat_threshold (20) must be more than"),
        ("m: {site: a, heartbeat_period: 0}\n", "m.heartbeat_period: Input should be greater"),
        ("m: {site: a, task_timeout: 0}\n", "m.task_timeout: Input should be greater than 0"),
        ("m: {site: a, task_timeout: .inf}\n", "m.task_timeout: Input should be a finite"),
    ],
)
def test_bad_run_settings_and_failover_fields_name_the_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(PwrunError) as error:
        load_executors_file(write(tmp_path, "x.yml", text))
    assert expected in str(error.value)
    assert "\n" not in str(error.value)
