"""The worker Python env: what the workstation runs, the wheelhouse a cluster installs from."""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

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


def read_probe(host: str, rc: int, output: str, check_python: bool) -> dict:
    """Parse the env probe (home=, python=, marker= lines); raise saying what to change."""
    fields = dict(line.strip().partition("=")[::2] for line in output.splitlines() if "=" in line)
    if rc != 0 or "home" not in fields or "python" not in fields:
        raise PwrunError(
            f"{host}: {' '.join(output.split()) or f'exit {rc}'}. The cluster needs python3 for "
            "Ansible and the venv backend: install it (same major.minor as the workstation) or "
            "set python_env_python and ansible_python_interpreter to its path."
        )
    if check_python:
        check_python_match(host, fields["python"])
    return {"home": fields["home"], "python": fields["python"], "marker": fields.get("marker", "")}


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
