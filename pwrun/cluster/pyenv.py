"""The worker Python env: what the workstation runs, the wheelhouse a cluster installs from."""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import yaml

from pwrun.errors import InfrastructureError, PwrunError

MARKER = ".pwrun-env.json"


def workstation_python() -> str:
    """The workstation's Python major.minor (the one that runs the Parsl interchange)."""
    return "{}.{}".format(*sys.version_info[:2])


def workstation_parsl() -> str:
    """The Parsl version installed on the workstation."""
    try:
        return metadata.version("parsl")
    except metadata.PackageNotFoundError:
        raise PwrunError("parsl is not installed on the workstation: pip install parsl") from None


def requirements(parsl_version: str, packages: list[str]) -> list[str]:
    """What the worker env installs: exactly this Parsl, plus the user's extra packages."""
    return [f"parsl=={parsl_version}", *sorted(set(packages))]


def check_python_match(host: str, cluster_python: str, workstation: str | None = None) -> None:
    """Fail early, saying what to change, when the cluster's major.minor differs from ours."""
    workstation = workstation or workstation_python()
    cluster = ".".join(cluster_python.strip().split(".")[:2])
    if cluster != workstation:
        raise PwrunError(
            f"{host}: the cluster's python3 is {cluster}, the workstation's is {workstation}; "
            "Parsl refuses workers whose Python major.minor differs. Set python_env_python to "
            f"a python{workstation} on the cluster, or use python_env_backend: conda (installs "
            f"python={workstation}), or run pwrun from a Python {cluster} env on the workstation."
        )


@dataclass(frozen=True)
class Wheelhouse:
    """Wheels for one requirement set, cached on the workstation by content key."""

    key: str
    directory: Path

    @property
    def archive(self) -> Path:
        return self.directory.with_suffix(".tar")

    @property
    def complete(self) -> bool:
        return (self.directory / MARKER).exists() and self.archive.exists()


def wheelhouse_key(reqs: list[str], python: str) -> str:
    return hashlib.sha256(json.dumps([python, reqs]).encode()).hexdigest()[:16]


def wheelhouse_for(reqs: list[str], python: str) -> Wheelhouse:
    from pwrun import state  # imports Parsl: only where the cache directory is needed

    key = wheelhouse_key(reqs, python)
    return Wheelhouse(key, state.home() / "wheelhouses" / key)


def plan(parsl_version: str, packages: list[str]) -> dict:
    """What the worker env must hold: Parsl version, Python major.minor, requirements, key."""
    version = parsl_version or workstation_parsl()
    python = workstation_python()
    reqs = requirements(version, packages)
    return {
        "parsl_version": version,
        "python": python,
        "requirements": reqs,
        "wheelhouse_key": wheelhouse_key(reqs, python),
    }


def label_env_plans(
    label_envs: list[dict], parsl_version: str, packages: list[str], given_path: str, backend: str
) -> list[dict]:
    """The site's envs: its own (first: `packages`, at `given_path`), then one per distinct
    label env (`labels`, `packages`, conda `environment` text, `conda_prefix`), each at
    `given_path-<key>`, keyed by what it holds. `backend` is the site's (venv or conda); a
    label's conda environment is built with conda."""
    own = plan(parsl_version, packages)
    plans = [{**own, "labels": [], "given_path": given_path, "backend": backend,
              "environment": "", "conda_prefix": ""}]  # fmt: skip
    for wanted in label_envs:
        env = plan(parsl_version, [*packages, *wanted.get("packages", [])])
        environment = wanted.get("environment", "")
        if environment:
            environment = pinned_environment(environment, env["parsl_version"], env["python"])
        key = wheelhouse_key([*env["requirements"], environment], env["python"])
        plans.append({
            **env,
            "labels": list(wanted.get("labels", [])),
            "given_path": f"{given_path.rstrip('/')}-{key}",
            "backend": "conda" if environment else backend,
            "environment": environment,
            "conda_prefix": wanted.get("conda_prefix", ""),
        })  # fmt: skip
    return plans


def env_states(plans: list[dict], markers: list[str], home: str, source: str, conda: str) -> list:
    """Each planned env with its path on the site, the marker it has and the one it needs
    (venv; a conda env's is its environment file's checksum, known once written), whether it
    is ready, and the shell line that activates it. `conda` is the site's conda install."""
    from pwrun.transport.ssh import expand_home

    envs = []
    for number, env in enumerate(plans):
        path = expand_home(env["given_path"], home)
        expected = json.dumps(
            {"requirements": env["requirements"], "source": source}, sort_keys=True
        )
        prefix = expand_home(env["conda_prefix"] or conda, home)
        activate = (
            f"source {shlex.quote(prefix)}/bin/activate {shlex.quote(path)}"
            if env["backend"] == "conda" else f"source {shlex.quote(path)}/bin/activate"
        )  # fmt: skip
        marker = markers[number] if number < len(markers) else ""
        state = {"path": path, "conda_prefix": prefix, "marker": marker, "expected": expected}
        envs.append({**env, **state, "ready": marker == expected, "worker_init": activate})
    return envs


def pinned_environment(text: str, parsl_version: str, python: str) -> str:
    """A conda environment.yml with exactly this Parsl (from pip) and this Python major.minor;
    ValueError naming what to change when the file asks for others."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {' '.join(str(exc).split())}") from None
    dependencies = (data.get("dependencies") or []) if isinstance(data, dict) else None
    if not isinstance(dependencies, list):
        raise ValueError(
            "not a conda environment file: expected a mapping with a dependencies list"
        )
    conda: list = []
    pip: list = []
    for dependency in dependencies:
        if isinstance(dependency, dict) and set(dependency) == {"pip"}:
            pip += [
                r for r in dependency["pip"] or [] if not _pins(r, "parsl", parsl_version, "==")
            ]
        elif isinstance(dependency, str):
            if not _pins(dependency, "parsl", parsl_version, "="):
                _pins(dependency, "python", python, "=")  # only checks
                conda.append(dependency)
        else:
            raise ValueError(f"dependency {dependency!r}: expected a package spec or pip: [...]")
    if not any(_name(d) == "python" for d in conda):
        conda.append(f"python={python}")
    if not any(_name(d) == "pip" for d in conda):
        conda.append("pip")
    data = {**data, "dependencies": [*conda, {"pip": [f"parsl=={parsl_version}", *pip]}]}
    data.pop("prefix", None)  # pwrun chooses where the env goes
    return yaml.safe_dump(data, sort_keys=False)


def _name(spec: object) -> str:
    """A conda or pip spec's package name (`conda-forge::numpy>=1` -> numpy)."""
    return re.split(r"[=<>!~\[; @]", str(spec).split("::")[-1].strip(), maxsplit=1)[0].lower()


def _pins(spec: object, name: str, version: str, equals: str) -> bool:
    """Whether `spec` names package `name`: True when it asks for `version` (or none), else a
    ValueError saying what pwrun needs. A Python pin checks major.minor."""
    if _name(spec) != name:
        return False
    wanted = str(spec).split("::")[-1].strip()[len(name) :].strip().lstrip("=").strip()
    if wanted and not (wanted == version or (name == "python" and wanted.startswith(version))):
        raise ValueError(
            f"{spec!r}: the workers need {name} {version}, the workstation's; "
            f"write {name}{equals}{version} or leave it to pwrun"
        )
    return True


def read_probe(host: str, rc: int, output: str, check_python: bool) -> dict:
    """Parse the env probe (home=, python=, marker= lines, marker.N= for the label envs);
    raise saying what to change."""
    fields = dict(line.strip().partition("=")[::2] for line in output.splitlines() if "=" in line)
    if rc != 0 or "home" not in fields or "python" not in fields:
        raise PwrunError(
            f"{host}: {' '.join(output.split()) or f'exit {rc}'}. The cluster needs python3 for "
            "Ansible and the venv backend: install it (same major.minor as the workstation) or "
            "set python_env_python and ansible_python_interpreter to its path."
        )
    if check_python:
        check_python_match(host, fields["python"])
    markers = [fields.get("marker", "")]
    while f"marker.{len(markers)}" in fields:
        markers.append(fields[f"marker.{len(markers)}"])
    return {"home": fields["home"], "python": fields["python"], "marker": markers[0],
            "markers": markers}  # fmt: skip


def build_wheelhouse(reqs: list[str], python: str | None = None) -> tuple[Wheelhouse, bool]:
    """Download wheels for `reqs` (binary only) and pack them in one archive; cached.

    Returns the wheelhouse and whether it was built now. Safe against concurrent callers
    (one per cluster) and against an interrupted download (built in a temporary directory).
    """
    python = python or workstation_python()
    wheelhouse = wheelhouse_for(reqs, python)
    if wheelhouse.complete:
        return wheelhouse, False
    wheelhouse.directory.parent.mkdir(parents=True, exist_ok=True)
    with open(wheelhouse.directory.parent / f"{wheelhouse.key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if wheelhouse.complete:
            return wheelhouse, False
        staging = Path(tempfile.mkdtemp(dir=wheelhouse.directory.parent, prefix=".build-"))
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "-q",
                 "--python-version", python, "-d", str(staging), *reqs],
                capture_output=True, text=True,
            )  # fmt: skip
            if proc.returncode != 0:
                errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
                raise InfrastructureError(
                    f"building the wheelhouse for {' '.join(reqs)} failed: "
                    + (errors[-1] if errors else proc.stderr.strip()[-300:])
                    + "; the site installs from this wheelhouse, with no package index: make a "
                    "wheel of each package reachable to this machine's pip (its index, or "
                    "PIP_FIND_LINKS), or set python_env_source: index if the site reaches one"
                )
            (staging / MARKER).write_text(json.dumps({"requirements": reqs, "python": python}))
            shutil.rmtree(wheelhouse.directory, ignore_errors=True)
            staging.rename(wheelhouse.directory)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        partial = wheelhouse.archive.with_suffix(".tar.part")
        with tarfile.open(partial, "w") as tar:
            for wheel in sorted(wheelhouse.directory.iterdir()):
                tar.add(wheel, arcname=wheel.name)
        partial.rename(wheelhouse.archive)
    return wheelhouse, True


# An env the user brings (executors file: python, activate, or conda_prefix + conda_env) is used
# as is, once its Python and Parsl are checked against the workstation's, one ssh round trip per
# site for all its labels.
OWN_ENV_CODE = (
    "import sys; print('pwrun-python=%d.%d' % sys.version_info[:2]); "
    "import parsl; print('pwrun-parsl=' + parsl.__version__)"
)


def own_env_activation(kind: str, path: str, name: str = "") -> str:
    """The shell line that puts an env the user brings first on PATH (its worker_init)."""
    from pwrun.transport.ssh import shell_path

    if kind == "python":
        return f'export PATH={shell_path(path.rpartition("/")[0] or "/")}:"$PATH"'
    if kind == "activate":
        return f"source {shell_path(path)}"
    return f"source {shell_path(path)}/bin/activate {shlex.quote(name)}"


def own_env_check(envs: list[tuple[str, str, str]]) -> str:
    """One shell command that activates each env (kind, path, name) in a subshell and prints
    its Python and Parsl versions, or why it could not. It runs in bash, as the workers' job
    scripts do (conda's activate takes its argument only there)."""
    from pwrun.transport.ssh import shell_path

    parts = []
    for number, (kind, path, name) in enumerate(envs):
        python = shell_path(path) if kind == "python" else "python3"
        parts.append(
            f"echo pwrun-env={number}; ( {own_env_activation(kind, path, name)} >/dev/null 2>&1"
            " || { echo pwrun-failed; exit 0; };"
            f" {python} -u -c {shlex.quote(OWN_ENV_CODE)} 2>&1;"
            " command -v process_worker_pool.py >/dev/null || echo pwrun-nopool )"
        )
    return f"bash -c {shlex.quote('; '.join(parts))}"


def own_env_problems(output: str, count: int, parsl_version: str, python: str) -> list[str]:
    """Per env of `own_env_check`'s output, what is wrong with it and what to change ("" when
    it is fine)."""
    found: list[list[str]] = [[] for _ in range(count)]
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith("pwrun-env="):
            number = int(line.partition("=")[2])
            current = found[number] if number < count else None
        elif current is not None and line.strip():
            current.append(line.strip())
    return [_own_env_problem(lines, parsl_version, python) for lines in found]


def _own_env_problem(lines: list[str], parsl_version: str, python: str) -> str:
    fields = dict(line.partition("=")[::2] for line in lines if line.startswith("pwrun-"))
    if "pwrun-failed" in lines:
        return "activating it failed (is the path right, does it exist there?)"
    if "pwrun-python" not in fields:
        return f"its python did not run ({lines[-1] if lines else 'no answer'})"
    if fields["pwrun-python"] != python:
        return (
            f"its Python is {fields['pwrun-python']}, the workstation's {python}: Parsl refuses "
            f"workers whose major.minor differs; use an env with Python {python}"
        )
    if "pwrun-parsl" not in fields:
        cause = next((line for line in reversed(lines) if not line.startswith("pwrun-")), "")
        return f"it has no Parsl ({cause}): install parsl=={parsl_version}, the workstation's"
    if fields["pwrun-parsl"] != parsl_version:
        return (
            f"its Parsl is {fields['pwrun-parsl']}, the workstation's {parsl_version}: run "
            f"`pip install parsl=={parsl_version}` in it, or run pwrun with Parsl "
            f"{fields['pwrun-parsl']}"
        )
    if "pwrun-nopool" in lines:
        return "process_worker_pool.py is not on its PATH: install Parsl into it with pip"
    return ""
