"""Per-label envs without a lab: the executors file's env fields, the envs the role plans, the
environment.yml pwrun pins, and envs users bring, checked through tests/fakes/ssh (the ssh
seam) against real venvs made here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import parsl
import pytest
import yaml

from pwrun.cluster import pyenv
from pwrun.errors import PwrunError
from pwrun.parslcfg.executors import ClusterSpec, OwnEnv, by_scheduler, load_executors
from pwrun.provision import envs, ready
from pwrun.transport.ssh import SSHTarget

FAKES = Path(__file__).resolve().parents[1] / "fakes"
VERSION = parsl.__version__
PYTHON = pyenv.workstation_python()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load_error(tmp_path: Path, text: str, name: str = "x.yml") -> str:
    with pytest.raises(PwrunError) as info:
        load_executors(write(tmp_path, name, text))
    message = str(info.value)
    assert message.splitlines() == [message]
    return message


def test_packages_and_a_requirements_file_relative_to_the_executors_file(tmp_path: Path) -> None:
    write(
        tmp_path,
        "conf/reqs/b.txt",
        "# comment\n\nb-pkg>=2  # why\nc_pkg[x]==1; python_version>'3'\n",
    )
    text = "m:\n  site: a\n  packages: [a-pkg==1.0]\n  requirements: reqs/b.txt\n"
    specs = load_executors(write(tmp_path, "conf/x.yml", text))
    assert specs["m"].packages == ["a-pkg==1.0", "b-pkg>=2", 'c_pkg[x]==1; python_version > "3"']
    assert "m.packages.0: not a pip requirement: '-e .'" in load_error(
        tmp_path, "m:\n  site: a\n  packages: ['-e .']\n"
    )
    write(tmp_path, "opts.txt", "a\n--index-url http://x\n")
    assert load_error(tmp_path, "m:\n  site: a\n  requirements: opts.txt\n").endswith(
        "m.requirements: opts.txt: line 2: pip options are not read here, only requirements"
    )
    missing = load_error(tmp_path, "m:\n  site: a\n  requirements: nope.txt\n")
    assert (
        "m.requirements: " in missing and "nope.txt: cannot read the requirements file" in missing
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            "python: ~/e/bin/python\n  packages: [x]",
            "python names your own env, used as is: install packages",
        ),
        ("python: ~/e/bin/python\n  activate: ~/e/bin/activate", "give one of python, activate"),
        ("conda_env: e", "conda_env needs conda_prefix"),
        (
            "conda_prefix: ~/conda",
            "conda_prefix needs conda_env (your env there) or conda_environment",
        ),
        (
            "conda_environment: env.yml\n  packages: [x]",
            "conda_environment lists the env's packages",
        ),
        ("python: 'x; rm -rf ~'", "m.python: 'x; rm -rf ~' is not allowed here"),
        ("conda_prefix: ~/c\n  conda_env: 'a b'", "m.conda_env: String should match pattern"),
    ],
)
def test_one_way_to_the_env_per_label(tmp_path: Path, fields: str, message: str) -> None:
    write(tmp_path, "env.yml", "dependencies: [numpy]\n")
    assert message in load_error(tmp_path, f"m:\n  site: a\n  {fields}\n")


def test_own_envs_and_their_activation() -> None:
    def own(**fields: str) -> OwnEnv | None:
        return ClusterSpec.model_validate({"site": "a", **fields}).own_env()

    assert own() is None
    python = own(python="~/e/bin/python")
    assert python == OwnEnv("python", "~/e/bin/python")
    assert pyenv.own_env_activation(python.kind, python.path) == 'export PATH="$HOME"/e/bin:"$PATH"'
    conda = own(conda_prefix="/opt/conda", conda_env="ml")
    assert pyenv.own_env_activation(conda.kind, conda.path, conda.name) == (
        "source /opt/conda/bin/activate ml"
    )


def test_parsl_utils_conda_keys(tmp_path: Path) -> None:
    write(tmp_path, "requirements/env.yaml", "name: x\ndependencies: [numpy, {pip: [requests]}]\n")
    entry = {"POOL": "a", "CONDA_DIR": "~/miniconda3", "CONDA_ENV": "parsl-1.2",
             "INSTALL_CONDA": "true", "LOCAL_CONDA_YAML": "./requirements/env.yaml"}  # fmt: skip
    built = load_executors(write(tmp_path, "e.json", json.dumps({"m": entry})))["m"]
    assert (built.conda_environment, built.conda_prefix) == (
        "./requirements/env.yaml",
        "~/miniconda3",
    )
    assert "numpy" in built.environment and built.own_env() is None
    own = load_executors(
        write(tmp_path, "e.json", json.dumps({"m": {**entry, "INSTALL_CONDA": False}}))
    )["m"]
    assert own.own_env() == OwnEnv("conda", "~/miniconda3", "parsl-1.2") and not own.environment
    assert "m.INSTALL_CONDA: needs LOCAL_CONDA_YAML" in load_error(
        tmp_path, json.dumps({"m": {"POOL": "a", "INSTALL_CONDA": True}}), "e.json"
    )
    assert "m.INSTALL_CONDA: expected true or false" in load_error(
        tmp_path, json.dumps({"m": {"POOL": "a", "INSTALL_CONDA": "yes"}}), "e.json"
    )
    assert "m.LOCAL_CONDA_YAML: " in load_error(
        tmp_path, json.dumps({"m": {**entry, "LOCAL_CONDA_YAML": "gone.yml"}}), "e.json"
    )


def test_a_conda_environment_gets_exactly_the_workstations_parsl_and_python() -> None:
    text = (
        "name: ml\nprefix: /x\nchannels: [conda-forge]\n"
        "dependencies:\n  - numpy\n  - pip:\n    - requests\n"
    )
    pinned = yaml.safe_load(pyenv.pinned_environment(text, VERSION, PYTHON))
    pip = {"pip": [f"parsl=={VERSION}", "requests"]}
    assert pinned == {
        "name": "ml",
        "channels": ["conda-forge"],
        "dependencies": ["numpy", f"python={PYTHON}", "pip", pip],
    }
    same = (
        f"dependencies: [python={PYTHON}.2, 'parsl={VERSION}', pip, {{pip: ['parsl=={VERSION}']}}]"
    )
    assert yaml.safe_load(pyenv.pinned_environment(same, VERSION, PYTHON))["dependencies"] == [
        f"python={PYTHON}.2", "pip", {"pip": [f"parsl=={VERSION}"]},
    ]  # fmt: skip
    for wrong, what in (
        ("dependencies: [python=3.8]", "the workers need python"),
        ("dependencies: ['conda-forge::parsl=2024.1.1']", f"write parsl={VERSION}"),
        ("dependencies: [{pip: [parsl==2024.1.1]}]", f"write parsl=={VERSION}"),
        ("[1, 2]", "not a conda environment file"),
        ("dependencies: [{conda: x}]", "expected a package spec or pip"),
        ("a: [", "not valid YAML"),
    ):
        with pytest.raises(ValueError, match=what):
            pyenv.pinned_environment(wrong, VERSION, PYTHON)


def test_the_role_plans_one_env_per_distinct_set_keyed_by_content() -> None:
    wanted = [
        {"labels": ["one"], "packages": ["a-pkg"]},
        {"labels": ["two", "three"], "packages": ["b-pkg"]},
        {"labels": ["ml"], "environment": "dependencies: [numpy]\n", "conda_prefix": "~/mc"},
    ]
    plans = pyenv.label_env_plans(wanted, "", ["site-pkg"], "~/.pwrun/envs/p", "venv")
    assert [p["labels"] for p in plans] == [[], ["one"], ["two", "three"], ["ml"]]
    assert plans[1]["requirements"] == [f"parsl=={VERSION}", "a-pkg", "site-pkg"]
    paths = [p["given_path"] for p in plans]
    assert paths[0] == "~/.pwrun/envs/p" and len(set(paths)) == 4
    assert all(path.startswith("~/.pwrun/envs/p-") for path in paths[1:])
    again = pyenv.label_env_plans(wanted[1:2], "", ["site-pkg"], "~/.pwrun/envs/p", "venv")
    assert again[1]["given_path"] == plans[2]["given_path"]  # the same set, the same env
    assert [p["backend"] for p in plans] == ["venv", "venv", "venv", "conda"]
    assert f"parsl=={VERSION}" in plans[3]["environment"]

    ready_marker = json.dumps({"requirements": plans[1]["requirements"], "source": "wheelhouse"})
    states = pyenv.env_states(plans, ["", ready_marker], "/home/u", "wheelhouse", "~/.pwrun/mf")
    assert [s["ready"] for s in states] == [False, True, False, False]
    assert states[1]["worker_init"] == f"source {states[1]['path']}/bin/activate"
    assert states[3]["worker_init"] == f"source /home/u/mc/bin/activate {states[3]['path']}"
    assert states[0]["conda_prefix"] == "/home/u/.pwrun/mf"


def test_the_probe_reads_every_envs_marker() -> None:
    probe = f"home=/h\npython={PYTHON}.1\nmarker=a\nmarker.1=\nmarker.2=c\n"
    assert pyenv.read_probe("s", 0, probe, True)["markers"] == ["a", "", "c"]
    facts = {
        "pwrun_env_path": "/h/e",
        "pwrun_label_envs": [{"labels": ["x"], "path": "/h/e-1", "worker_init": "source y"}],
    }
    command = ready.probe_command(facts)
    assert command.count(".pwrun-env.json") == 2 and "/h/e-1/bin/python" in command


def test_labels_sharing_a_package_set_share_an_env_and_find_their_activation() -> None:
    specs = {
        label: ClusterSpec.model_validate({"site": site, **fields})
        for label, site, fields in (
            ("one", "a", {"packages": ["x", "y"]}),
            ("two", "a", {"packages": ["y", "x", "x"]}),
            ("three", "b", {"packages": ["x"]}),
            ("plain", "a", {}),
            ("mine", "a", {"activate": "~/e/bin/activate"}),
        )
    }
    wanted = envs.label_envs(specs)
    built = {"environment": "", "conda_prefix": ""}
    assert wanted == {
        "a": [{"labels": ["one", "two"], "packages": ["x", "y"], **built}],
        "b": [{"labels": ["three"], "packages": ["x"], **built}],
    }
    hostvars = envs.with_label_envs({"a": {"h": 1}, "b": {}, "c": {"h": 3}}, specs)
    assert hostvars["c"] == {"h": 3}  # no label env: its recorded state is untouched
    assert hostvars["a"][envs.LABEL_ENVS][0]["packages"] == [
        {"__ansible_unsafe": "x"}, {"__ansible_unsafe": "y"},
    ]  # fmt: skip
    facts = {
        "pwrun_worker_init": "source site",
        "pwrun_label_envs": [{"labels": ["one", "two"], "path": "/e", "worker_init": "source e"}],
    }
    assert envs.worker_init("two", specs["two"], facts) == "source e"
    assert envs.worker_init("plain", specs["plain"], facts) == "source site"
    assert envs.worker_init("mine", specs["mine"], facts) == 'source "$HOME"/e/bin/activate'
    with pytest.raises(PwrunError, match="b: provisioning made no env for label three"):
        envs.worker_init("three", specs["three"], facts)


@pytest.fixture
def fake_ssh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SSHTarget:
    """The login node is this machine (tests/fakes/ssh runs the remote command here)."""
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PWRUN_HOME", str(tmp_path / "state"))
    return SSHTarget("127.0.0.1")


def venv_with_parsl(path: Path, version: str | None) -> Path:
    """A real venv (no pip) whose `parsl` is a stand-in of that version (None: no parsl)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    if version:
        code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        purelib = subprocess.run(
            [path / "bin/python", "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        (Path(purelib) / "parsl").mkdir()
        (Path(purelib) / "parsl" / "__init__.py").write_text(f"__version__ = {version!r}\n")
    return path


def test_own_envs_are_checked_on_the_site_and_mismatches_named(
    fake_ssh: SSHTarget, tmp_path: Path
) -> None:
    old = venv_with_parsl(tmp_path / "old", "2024.1.1")
    bare = venv_with_parsl(tmp_path / "bare", None)
    conda = tmp_path / "conda"  # a conda install's layout: bin/activate ENV puts envs/ENV first
    venv_with_parsl(conda / "envs" / "ml", "2024.1.1")
    (conda / "bin").mkdir()
    (conda / "bin" / "activate").write_text(
        'export PATH="$(dirname "$BASH_SOURCE")/../envs/$1/bin:$PATH"\n'
    )
    good = Path(sysconfig.get_paths()["scripts"]) / "python3"  # this machine's, with Parsl
    specs = {
        label: ClusterSpec.model_validate({"site": "s", **fields})
        for label, fields in (
            ("good", {"python": str(good)}),
            ("old", {"python": f"{old}/bin/python"}),
            ("oldact", {"activate": f"{old}/bin/activate"}),
            ("bare", {"python": f"{bare}/bin/python"}),
            ("gone", {"activate": f"{tmp_path}/nowhere/bin/activate"}),
            ("ml", {"conda_prefix": str(conda), "conda_env": "ml"}),
            ("plain", {}),
        )
    }
    with pytest.raises(PwrunError) as info:
        envs.check_own_envs(specs, {"s": fake_ssh}, "x.yml")
    problems = str(info.value).split("; x.yml: ")
    assert len(problems) == 5 and str(info.value).count("\n") == 0, info.value
    assert problems[0] == (
        f"x.yml: old.python: {old}/bin/python on s: its Parsl is 2024.1.1, the workstation's "
        f"{VERSION}: run `pip install parsl=={VERSION}` in it, or run pwrun with Parsl 2024.1.1"
    )
    assert problems[1].startswith(
        f"oldact.activate: {old}/bin/activate on s: its Parsl is 2024.1.1"
    )
    assert problems[2].startswith(f"bare.python: {bare}/bin/python on s: it has no Parsl (")
    assert "No module named 'parsl'" in problems[2]
    assert problems[3].startswith("gone.activate: ") and "activating it failed" in problems[3]
    assert problems[4].startswith(
        f"ml.conda_env: env 'ml' of the conda at {conda} on s: its Parsl is 2024.1.1"
    )

    envs.check_own_envs({"good": specs["good"], "plain": specs["plain"]}, {"s": fake_ssh}, "x")


def test_a_label_env_survives_the_schedulers_choice(tmp_path: Path) -> None:
    """Once the site's facts say its scheduler, an entry is validated again: its requirements
    file's packages and its environment file's text stay as first read."""
    write(tmp_path, "r.txt", "b-pkg\n")
    write(tmp_path, "env.yml", "dependencies: [numpy]\n")
    text = "m:\n  site: a\n  requirements: r.txt\nc:\n  site: a\n  conda_environment: env.yml\n"
    specs = load_executors(write(tmp_path, "x.yml", text))
    again = by_scheduler(specs, {"a": "slurm"}, "x.yml")
    assert again["m"].packages == ["b-pkg"] and again["c"].environment == specs["c"].environment
    assert "numpy" in again["c"].environment
