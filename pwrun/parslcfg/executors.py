"""The executors file: per Parsl label, the site and how to run blocks there.

YAML, keyed by label::

    map:
      site: site-a          # inventory host: a ClusterSpec
      partition: compute
      max_blocks: 2
      fallback: [here]      # where its tasks go when its site fails
    here:
      site: local           # this machine: a LocalSpec, without the clusters' fields
    pwrun:                  # reserved: run-level settings, not a label
      retries: 2

parsl_utils' executors.json (POOL, PARTITION, NODES, ...) is read too; the fields the platform
used to fill in (HOST_IP, HOST_USER, WORKER_PORT_*) now come from inventory facts.

Every problem is one `PwrunError` line naming the file, the label and the field.
"""

from __future__ import annotations

import contextlib
import json
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeAlias, TypeVar, get_args

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from pwrun import validation
from pwrun.cluster.pyenv import pinned_environment, workstation_parsl, workstation_python
from pwrun.errors import (
    Loc,
    PwrunError,
    describe_validation,
    dotted,
    read_text,
    validation_message,
)

LOCAL_SITE = "local"
RUN_KEY = "pwrun"  # the top-level key of run-level settings: never a label

# Bounds: far above any real cluster, low enough that a typo fails here rather than as a Slurm
# job that never starts or a Parsl scaling loop that never ends.
MAX_NODES_PER_BLOCK = 10_000
MAX_BLOCKS = 10_000
MAX_WORKERS_PER_NODE = 4096
MAX_CORES_PER_WORKER = 4096
MAX_CORES_PER_NODE = 4096
MAX_MEM_PER_NODE_GB = 65_536
MAX_GPUS_PER_NODE = 64
WALLTIME = r"^[0-9]{1,4}:[0-5][0-9]:[0-5][0-9]$"  # H:MM:SS, up to 9999 hours
CONDA_ENV_NAME = r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}$"


@dataclass(frozen=True)
class OwnEnv:
    """An env the user already has on the site: `kind` python (path to its python), activate
    (its activate script) or conda (`path` a conda install, `name` the env in it)."""

    kind: Literal["python", "activate", "conda"]
    path: str
    name: str = ""


MAX_SECONDS = 7 * 24 * 3600  # heartbeats and timeouts: a week
# Parsl's heartbeats (30 s, lost after 120 s) are too slow to fail over: a site whose managers
# miss heartbeats for HEARTBEAT_THRESHOLD seconds is noticed then.
HEARTBEAT_PERIOD = 5
HEARTBEAT_THRESHOLD = 20


def _no_nul(value: str) -> str:
    if "\0" in value:
        raise ValueError("NUL characters are not allowed")
    return value


def _requirement(text: str) -> str:
    """A pip requirement string (`name`, `name==1.2`, `name[extra]>=1; marker`, `name @ URL`)."""
    try:
        return str(Requirement(text))
    except InvalidRequirement as exc:
        cause = next(iter(str(exc).splitlines()), "")
        raise ValueError(f"not a pip requirement: {text!r} ({cause})") from None


def _some_time(walltime: str) -> str:
    if not walltime.strip("0:"):
        raise ValueError("walltime must be more than 00:00:00")
    return walltime


Text = Annotated[str, AfterValidator(_no_nul)]
# Written unquoted into #SBATCH lines: Slurm's names (partitions: a comma-separated list), and
# constraint expressions (features joined by & | , with counts, brackets and parentheses).
SlurmNames = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*$")]
SlurmName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
Constraint = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.,&|*!:\[\]()-]+$")]
Launcher: TypeAlias = Literal["srun", "single_node", "mpiexec", "simple"]
PbsLauncher: TypeAlias = Literal["single_node", "mpiexec", "simple"]  # srun is Slurm's


Provider: TypeAlias = Literal["local", "slurm", "pbspro", "torque"]
PROVIDERS: tuple[str, ...] = get_args(Provider)
PBS_PROVIDERS = PROVIDERS[2:]


class _Spec(BaseModel):
    """What every entry may say, on any site: how blocks scale, workers, and their shell."""

    # strict: no "2" or true for an int, no 2.7 truncated to 2
    model_config = ConfigDict(extra="forbid", strict=True)

    site: str
    provider: Provider | None = Field(
        None,
        description="local on this machine; slurm, pbspro or torque on a cluster (default: the "
        "cluster's scheduler)",
    )
    init_blocks: int = Field(1, ge=0, le=MAX_BLOCKS)
    min_blocks: int = Field(0, ge=0, le=MAX_BLOCKS)
    max_blocks: int = Field(1, ge=1, le=MAX_BLOCKS)
    parallelism: float = Field(1.0, gt=0, le=1, allow_inf_nan=False)
    cores_per_worker: float = Field(1.0, gt=0, le=MAX_CORES_PER_WORKER, allow_inf_nan=False)
    max_workers_per_node: int | None = Field(None, ge=1, le=MAX_WORKERS_PER_NODE)
    env: dict[str, Text] = Field(default_factory=dict)
    worker_init: Text = ""
    fallback: list[str] = Field(
        default_factory=list, description="Labels that take this label's tasks, in order, "
        "when its site fails (lost workers or blocks, site lost or unreachable at start)."
    )  # fmt: skip
    heartbeat_period: int = Field(HEARTBEAT_PERIOD, ge=1, le=MAX_SECONDS)
    heartbeat_threshold: int = Field(HEARTBEAT_THRESHOLD, ge=2, le=MAX_SECONDS)
    task_timeout: float | None = Field(None, gt=0, le=MAX_SECONDS, allow_inf_nan=False)

    @model_validator(mode="after")
    def _heartbeats(self) -> Self:
        if self.heartbeat_threshold <= self.heartbeat_period:
            raise ValueError(
                f"heartbeat_threshold ({self.heartbeat_threshold}) must be more than "
                f"heartbeat_period ({self.heartbeat_period})"
            )
        return self

    # the entry as written (legacy names translated) and each field's legacy name, kept for
    # validating it again once the site's scheduler is known (`by_scheduler`)
    _written: tuple[dict[str, Any], dict[str, tuple[str, ...]]] = PrivateAttr(({}, {}))

    @property
    def written(self) -> tuple[dict[str, Any], dict[str, tuple[str, ...]]]:
        return self._written

    @written.setter
    def written(self, value: tuple[dict[str, Any], dict[str, tuple[str, ...]]]) -> None:
        self._written = value

    @model_validator(mode="after")
    def _provider_matches_site(self) -> Self:
        local = self.site == LOCAL_SITE
        if self.provider is not None and (self.provider == "local") != local:
            raise ValueError(
                f"provider {self.provider} does not run on site {self.site!r}: "
                + ("use site: local" if self.provider == "local" else "use a cluster's name")
            )
        return self

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        """Names are written unquoted after `export`: ASCII shell identifiers only."""
        for name in env:
            if not (name.isascii() and name.isidentifier()):
                raise ValueError(
                    f"not an environment variable name: {name!r}: use ASCII letters, digits "
                    "and '_', not starting with a digit"
                )
        return env

    def shell_init(self, first: str = "") -> str:
        """The workers' shell set-up: `first`, then `env` exported (values quoted), then
        `worker_init`."""
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in self.env.items())
        return "\n".join(filter(None, [first, exports, self.worker_init]))


class LocalSpec(_Spec):
    """A label whose workers run on this machine (`site: local`)."""

    site: Literal["local"] = Field(description="'local': this machine.")
    provider: Provider | None = "local"


class ClusterSpec(_Spec):
    """A label whose blocks are batch jobs on a cluster of the inventory: what every scheduler
    takes. `SlurmSpec` and `PbsSpec` add their own fields."""

    site: validation.ClusterName = Field(description="Inventory host (cluster name).")
    nodes_per_block: int = Field(1, ge=1, le=MAX_NODES_PER_BLOCK)
    walltime: Annotated[str, AfterValidator(_some_time)] = Field("00:30:00", pattern=WALLTIME)
    scheduler_options: Text = ""
    run_dir: validation.RemotePath = Field(
        "~/.pwrun/runs", description="Directory on the site under which each run keeps its files."
    )
    # The label's env: packages pwrun installs (a venv, or the site's conda backend), a conda
    # environment.yml it builds, or one the user already has on the site (used as is).
    packages: list[Annotated[str, AfterValidator(_requirement)]] = Field(default_factory=list)
    requirements: Text | None = Field(None, description="pip requirements file (relative paths: "
                                      "to the executors file)")  # fmt: skip
    conda_environment: Text | None = Field(None, description="environment.yml to build with conda")
    python: validation.RemotePath | None = Field(None, description="the python of your own env")
    activate: validation.RemotePath | None = Field(None, description="your env's activate script")
    conda_prefix: validation.RemotePath | None = Field(None, description="a conda install")
    conda_env: Annotated[str, Field(pattern=CONDA_ENV_NAME)] | None = Field(
        None, description="the name of your env in conda_prefix"
    )
    _environment: str = PrivateAttr("")  # conda_environment's text, read by load_executors

    @model_validator(mode="after")
    def _one_env(self) -> Self:
        """At most one way to get the label's env; a conda env needs its install."""
        own = [f for f in ("python", "activate", "conda_env") if getattr(self, f) is not None]
        built = [f for f in ("packages", "requirements", "conda_environment") if getattr(self, f)]
        if len(own) > 1:
            raise ValueError(f"give one of {', '.join(own)}: each names your own env")
        if own and built:
            raise ValueError(
                f"{own[0]} names your own env, used as is: install {built[0]} into it "
                f"yourself, or drop {own[0]} and pwrun builds an env with them"
            )
        if self.conda_environment and (self.packages or self.requirements):
            raise ValueError(
                "conda_environment lists the env's packages: put packages/requirements in it"
            )
        if self.conda_env and not self.conda_prefix:
            raise ValueError("conda_env needs conda_prefix: the conda install that holds it")
        if self.conda_prefix and not (self.conda_env or self.conda_environment):
            raise ValueError(
                "conda_prefix needs conda_env (your env there) or conda_environment (one to build)"
            )
        return self

    @property
    def environment(self) -> str:
        """The text of `conda_environment` ("" without one)."""
        return self._environment

    def own_env(self) -> OwnEnv | None:
        """The env the user brings (used as is), if the label names one."""
        if self.python:
            return OwnEnv("python", self.python)
        if self.activate:
            return OwnEnv("activate", self.activate)
        if self.conda_prefix and self.conda_env:
            return OwnEnv("conda", self.conda_prefix, self.conda_env)
        return None


class SlurmSpec(ClusterSpec):
    """A label whose blocks are Slurm jobs (`provider: slurm`), an HTEX (`MpiSpec` for
    `kind: mpi`)."""

    provider: Provider | None = "slurm"
    kind: Literal["htex"] = Field("htex", description="htex, or mpi for an MPIExecutor.")
    partition: SlurmNames | None = None
    launcher: Launcher | None = Field(
        None, description="How a block starts its worker pools (srun: one on every node)."
    )
    account: SlurmName | None = None
    qos: SlurmName | None = None
    constraint: Constraint | None = None
    exclusive: bool = False
    mem_per_node: int | None = Field(None, ge=1, le=MAX_MEM_PER_NODE_GB, description="GB")
    cores_per_node: int | None = Field(None, ge=1, le=MAX_CORES_PER_NODE)
    gpus_per_node: int | None = Field(None, ge=1, le=MAX_GPUS_PER_NODE)

    def launcher_name(self) -> Launcher:
        """The launcher asked for, else srun for a multi-node block, single_node otherwise."""
        return self.launcher or ("srun" if self.nodes_per_block > 1 else "single_node")


class MpiSpec(SlurmSpec):
    """A Slurm label whose tasks are MPI applications (Parsl's MPIExecutor): one pool per
    block, on its first node, runs `max_workers_per_block` apps at once across the block's
    nodes, each launched with `$PARSL_MPI_PREFIX`."""

    kind: Literal["mpi"] = Field(description="mpi: Parsl's MPIExecutor.")  # type: ignore[assignment]
    mpi_launcher: Literal["srun", "mpiexec"] = "srun"
    max_workers_per_block: int = Field(1, ge=1, le=MAX_NODES_PER_BLOCK)

    @field_validator("max_workers_per_node", "cores_per_worker", "gpus_per_node")
    @classmethod
    def _htex_only(cls, value: Any) -> Any:
        """Given explicitly (defaults are not validated), these have no meaning here."""
        raise ValueError("not allowed with kind: mpi (MPIExecutor: see max_workers_per_block)")

    @field_validator("launcher")
    @classmethod
    def _simple_launcher(cls, launcher: Launcher | None) -> Launcher | None:
        if launcher not in (None, "simple"):
            raise ValueError("kind: mpi starts its pool with the simple launcher only")
        return launcher

    @model_validator(mode="after")
    def _workers_fit_block(self) -> Self:
        if self.max_workers_per_block > self.nodes_per_block:
            raise ValueError(
                f"max_workers_per_block ({self.max_workers_per_block}) is more than "
                f"nodes_per_block ({self.nodes_per_block}): each MPI app needs a node at least"
            )
        return self

    def launcher_name(self) -> Launcher:
        return "simple"


class PbsSpec(ClusterSpec):
    """A label whose blocks are PBS Pro or Torque jobs (`provider: pbspro | torque`)."""

    provider: Provider | None = "pbspro"
    queue: validation.SchedulerName | None = None
    account: validation.SchedulerName | None = None
    select_options: validation.PbsResources = Field(
        "", description="appended to PBS Pro's `-l select=N:ncpus=C` (e.g. ngpus=1)"
    )
    cores_per_node: int | None = Field(None, ge=1, le=MAX_CORES_PER_NODE)
    launcher: PbsLauncher | None = Field(
        None,
        description="How a block starts its worker pools (mpiexec: one on every node).",
        validate_default=True,
    )

    @field_validator("launcher")
    @classmethod
    def _multi_node_launcher(
        cls, launcher: PbsLauncher | None, info: ValidationInfo
    ) -> PbsLauncher | None:
        """A multi-node block with the single-node launcher idles all nodes but the first:
        PBS has no srun, so the launcher that fills them is the user's to choose."""
        nodes = info.data.get("nodes_per_block", 1)
        if nodes > 1 and launcher is None:
            raise ValueError(
                f"a PBS block of {nodes} nodes needs a launcher: mpiexec starts a worker pool "
                "on every node (over $PBS_NODEFILE); single_node uses the first node only"
            )
        return launcher

    def launcher_name(self) -> Launcher:
        return self.launcher or "single_node"

    @field_validator("select_options")
    @classmethod
    def _select_is_pbspro(cls, value: str, info: ValidationInfo) -> str:
        if value and info.data.get("provider") != "pbspro":
            raise ValueError("only for provider pbspro (Torque has no select)")
        return value


ExecutorSpec: TypeAlias = LocalSpec | SlurmSpec | PbsSpec
C = TypeVar("C", bound=ClusterSpec)
MODELS: dict[str, type[LocalSpec] | type[SlurmSpec] | type[PbsSpec]] = {
    "local": LocalSpec, "slurm": SlurmSpec, "pbspro": PbsSpec, "torque": PbsSpec,
}  # fmt: skip
# A field of another kind of entry is refused, each named: it would otherwise mean nothing.
_OWN = {model: frozenset(model.model_fields) for model in {*MODELS.values(), MpiSpec}}
ALL_FIELDS = frozenset().union(*_OWN.values())
MPI_ONLY = _OWN[MpiSpec] - _OWN[SlurmSpec]
WHERE: dict[type[BaseModel], str] = {
    LocalSpec: f"on site {LOCAL_SITE} (a cluster field)",
    SlurmSpec: "with provider slurm (a PBS field: give provider pbspro or torque)",
    MpiSpec: "with provider slurm (a PBS field: give provider pbspro or torque)",
    PbsSpec: "with a PBS provider (a Slurm field: PBS takes queue)",
}
MODEL_NAMES: dict[str, type[BaseModel]] = {model.__name__: model for model in WHERE}


class RunSettings(BaseModel):
    """The executors file's run-level settings (its top-level `pwrun:` mapping)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    retries: int | None = Field(
        None, ge=0, le=validation.MAX_RETRIES, description="Parsl retries per task (default: the "
        "workflow's Config, else 0); `pwrun run --retries N` wins over it."
    )  # fmt: skip


@dataclass(frozen=True)
class ExecutorsFile:
    """An executors file: its labels, in order, and its run-level settings."""

    labels: dict[str, ExecutorSpec]
    run: RunSettings

    def retries(self, given: int | None) -> int | None:
        """The run's retries: `given` (`--retries`, a session's `retries=`) wins over the file's."""
        return self.run.retries if given is None else given


def default_provider(facts: Mapping[str, Any]) -> str:
    """The provider a cluster's scheduler facts (or inventory variables) call for: torque for
    the Torque family, pbspro for other PBS, slurm otherwise (also when nothing is known)."""
    if facts.get("pwrun_scheduler") != "pbs":
        return "slurm"
    return "torque" if facts.get("pwrun_pbs_flavour") == "torque" else "pbspro"


def executor_spec(entry: Mapping[Any, Any], scheduler: str | None = None) -> ExecutorSpec:
    """One entry validated as the model its `site` and `provider` choose. A cluster entry
    without `provider` takes `scheduler` (a provider name: `default_provider` of the site's
    facts); when that is not known yet, PBS fields make it a PBS entry, else a Slurm one."""
    if entry.get("site") == LOCAL_SITE:
        return LocalSpec.model_validate(entry)
    given = entry.get("provider")
    if given is None:
        pbs_fields = (_OWN[PbsSpec] - _OWN[SlurmSpec]) & set(entry)
        given = scheduler or ("pbspro" if pbs_fields else "slurm")
        entry = {**entry, "provider": given}
    # provider local (or anything else) on a cluster: SlurmSpec names the problem
    if given in PBS_PROVIDERS:
        return PbsSpec.model_validate(entry)
    return (MpiSpec if entry.get("kind") == "mpi" else SlurmSpec).model_validate(entry)


def check_provider(entry: Mapping[Any, Any], scheduler: str) -> None:
    """A cluster entry's own `provider` must belong to the family `scheduler` does."""
    given = entry.get("provider")
    if given in PROVIDERS[1:] and MODELS[given] is not MODELS[scheduler]:
        family = "PBS" if scheduler in PBS_PROVIDERS else "Slurm"
        raise FieldError(
            ("provider",),
            f"site {entry.get('site')!r} runs {family} (its cluster facts): use provider "
            f"{scheduler}, or leave provider out",
        )


class FieldError(ValueError):
    """A problem with one field of an entry: `loc` is its path, e.g. ("SlurmProvider", "x")."""

    def __init__(self, loc: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


class DuplicateKeyError(ValueError):
    """A mapping gives the same key twice; `line` is 1-based (None for JSON)."""

    def __init__(self, key: object, line: int | None) -> None:
        super().__init__(f"duplicate key {key!r}" + (f" (line {line})" if line else ""))


LEGACY_FIELDS = {
    "POOL": "site",
    "RESOURCE": "site",
    "PARTITION": "partition",
    "NODES": "nodes_per_block",
    "WALLTIME": "walltime",
    "CORES_PER_WORKER": "cores_per_worker",
    "RUN_DIR": "run_dir",
}
# parsl_utils wrote numbers as text ("2", "0.5"): such text is read as a number; any other value
# (true, 2.7 for NODES, "two") goes to the model as it is and is refused there.
LEGACY_NUMBERS: dict[str, TypeAdapter[Any]] = {
    "NODES": TypeAdapter(int),
    "CORES_PER_WORKER": TypeAdapter(float),
}
NULL_REFUSED = "null is not allowed: give a value or leave the field out"
LEGACY_IGNORED = {
    # filled in by the PW platform, now inventory facts; or parsl_utils' own plumbing
    "HOST_IP", "HOST_USER", "WORKER_PORT_1", "WORKER_PORT_2", "ADDRESS", "WORKDIR", "POOL_TYPE",
    "SSH_CHANNEL_SCRIPT_DIR", "WORKER_LOGDIR_ROOT", "NTASKS_PER_NODE", "REQUIRED",
    "PROVIDER_TYPE",
}  # fmt: skip
# The label's conda env: CONDA_DIR + CONDA_ENV, yours; INSTALL_CONDA + LOCAL_CONDA_YAML, built.
LEGACY_CONDA = ("CONDA_DIR", "CONDA_ENV", "INSTALL_CONDA", "LOCAL_CONDA_YAML")
_LEGACY_BLOCKS = {
    "nodes_per_block", "init_blocks", "min_blocks", "max_blocks", "parallelism", "walltime",
    "scheduler_options", "worker_init",
}  # fmt: skip
_LEGACY_SLURM = {
    "partition", "account", "qos", "constraint", "exclusive", "mem_per_node", "cores_per_node",
    "gpus_per_node",
}  # fmt: skip
# parsl_utils' provider objects: their keyword arguments pwrun reads, and the provider each means
LEGACY_PROVIDERS = {
    "SlurmProvider": ("slurm", _LEGACY_BLOCKS | _LEGACY_SLURM),
    "PBSProProvider": (
        "pbspro",
        _LEGACY_BLOCKS | {"queue", "account", "select_options", "launcher"},
    ),
}


def from_legacy(entry: Mapping[Any, Any]) -> tuple[dict[str, Any], dict[str, tuple[str, ...]]]:
    """Translate one parsl_utils executors.json entry (it has POOL or RESOURCE) into fields.

    Returns the fields and, per field, the legacy name it came from (for `describe`).
    """
    spec: dict[str, Any] = {}
    origin: dict[str, tuple[str, ...]] = {}

    def take(field: str, loc: tuple[str, ...], value: Any) -> None:
        # parsl_utils gave null no meaning (complete_exec_conf.py tests `"HOST_IP" not in entry`;
        # a null reached Parsl as None), so a null is refused in every field read here. Ignored
        # fields are never read, whatever they hold.
        if value is None:
            raise FieldError(loc, NULL_REFUSED)
        if field in origin:
            raise FieldError(loc, f"{field} is already given by {'.'.join(origin[field])}")
        spec[field], origin[field] = value, loc

    for key, value in entry.items():
        if key in LEGACY_FIELDS:
            number = LEGACY_NUMBERS.get(key)
            if number is not None and isinstance(value, str):
                with contextlib.suppress(ValidationError):  # else the model names it
                    value = number.validate_python(value, strict=False)
            take(LEGACY_FIELDS[key], (key,), value)
        elif key in LEGACY_PROVIDERS:
            if not isinstance(value, dict):
                raise FieldError((key,), NULL_REFUSED if value is None else "expected a mapping")
            provider, keys = LEGACY_PROVIDERS[key]
            take("provider", (key,), provider)
            for name, setting in value.items():
                if name not in keys:
                    raise FieldError((key, name), "not supported by pwrun")
                take(name, (key, name), setting)
        elif key not in LEGACY_IGNORED and key not in LEGACY_CONDA:
            raise FieldError((key,), "unknown field")
    _legacy_conda(entry, take)
    return spec, origin


def _legacy_conda(entry: Mapping[Any, Any], take: Callable[[str, tuple[str, ...], Any], None]):
    """parsl_utils' conda keys: with INSTALL_CONDA true, build LOCAL_CONDA_YAML (with the conda
    at CONDA_DIR); otherwise use the env CONDA_ENV of the conda at CONDA_DIR as it is."""
    install = entry.get("INSTALL_CONDA", False)
    if isinstance(install, str) and install.lower() in ("true", "false"):
        install = install.lower() == "true"  # parsl_utils wrote "true" too
    if install is None:
        raise FieldError(("INSTALL_CONDA",), NULL_REFUSED)
    if not isinstance(install, bool):
        raise FieldError(("INSTALL_CONDA",), "expected true or false")
    if install:
        if "LOCAL_CONDA_YAML" not in entry:
            raise FieldError(("INSTALL_CONDA",), "needs LOCAL_CONDA_YAML: the environment to build")
        take("conda_environment", ("LOCAL_CONDA_YAML",), entry["LOCAL_CONDA_YAML"])
        if "CONDA_DIR" in entry:
            take("conda_prefix", ("CONDA_DIR",), entry["CONDA_DIR"])
        # CONDA_ENV named the env parsl_utils made; pwrun names a built env by its content.
        return
    # LOCAL_CONDA_YAML is read only with INSTALL_CONDA true, as parsl_utils did.
    for key, field in (("CONDA_DIR", "conda_prefix"), ("CONDA_ENV", "conda_env")):
        if key in entry:
            take(field, (key,), entry[key])


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load's loader, refusing a key given twice in one mapping (merges `<<` aside)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._checked: set[yaml.Node] = set()

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # Before the first flattening node.value holds the keys as written; merged ones come later.
        if node not in self._checked:
            self._checked.add(node)
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:
                    continue  # unhashable: the SafeLoader refuses it
                if duplicate:
                    raise DuplicateKeyError(key, key_node.start_mark.line + 1)
                seen.add(key)
        super().flatten_mapping(node)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object_pairs_hook: refuse a key given twice in one object."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKeyError(key, None)
        result[key] = value
    return result


def parse(path: Path) -> Any:
    """The file's document: JSON when it ends in `.json`, YAML otherwise."""
    kind = "JSON" if path.suffix == ".json" else "YAML"
    text = read_text(path, "the executors file")
    try:
        if kind == "JSON":
            return json.loads(text, object_pairs_hook=_unique_keys)
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except DuplicateKeyError as exc:
        raise PwrunError(f"{path}: {exc}") from None
    except RecursionError:
        raise PwrunError(f"{path}: not valid {kind}: nested too deeply") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: e.g. an int of 5000 digits
        if isinstance(exc, yaml.MarkedYAMLError) and exc.problem and exc.problem_mark:
            where = ", ".join(filter(None, [exc.context, exc.problem]))
            problem = f"{where} (line {exc.problem_mark.line + 1})"
        else:
            problem = next(iter(str(exc).splitlines()), type(exc).__name__)
        raise PwrunError(f"{path}: not valid {kind}: {problem}") from None


def _check_label(label: object) -> None:
    """Labels reach job names, file names, remote paths and tunnel names: validation.label."""
    try:
        validation.label(label if isinstance(label, str) else "")  # "" is never a label
    except ValueError:
        raise ValueError(f"label not allowed: use {validation.LABEL_RULE}") from None


def load_executors(path: Path) -> dict[str, ExecutorSpec]:
    """An executors file's labels (see `load_executors_file`)."""
    return load_executors_file(path).labels


def load_executors_file(path: Path) -> ExecutorsFile:
    """Read and validate an executors file; errors name the file, label and field."""
    return executors_file(parse(path), str(path), path.parent)


def executor_specs(data: object, source: str, base: Path | None = None) -> dict[str, ExecutorSpec]:
    """The labels of an executors file's document (see `executors_file`)."""
    return executors_file(data, source, base).labels


def executors_file(data: object, source: str, base: Path | None = None) -> ExecutorsFile:
    """Validate an executors file's document (label -> entry, and the reserved `pwrun` key),
    which `source` names in errors; the files it names (requirements, conda_environment) are
    relative to `base` (default: the working directory). A cluster entry without `provider` is
    a PBS one when it has PBS fields, else a Slurm one, until its site's facts say
    (`by_scheduler`)."""
    if not isinstance(data, dict):
        raise PwrunError(f"{source}: expected a mapping of executor labels to settings")
    data = dict(data)
    run = data.pop(RUN_KEY, None)
    if not data:
        raise PwrunError(f"{source}: expected a mapping of executor labels to settings")
    try:
        if not isinstance(run, dict | None):
            raise ValueError(
                f"expected a mapping of run settings ({RUN_KEY!r} is reserved: not a label)"
            )
        settings = RunSettings.model_validate(run or {})
    except ValueError as exc:
        raise PwrunError(f"{source}: {describe(RUN_KEY, exc)}") from None
    labels = _labels(source, data, base or Path.cwd())
    _check_fallbacks(source, labels)
    return ExecutorsFile(labels, settings)


def _check_fallbacks(source: str, labels: Mapping[str, ExecutorSpec]) -> None:
    """Each fallback is another label of the file, named once."""
    for label, spec in labels.items():
        for index, other in enumerate(spec.fallback):
            where = f"{source}: {_name(label)}.fallback.{index}"
            if other == label:
                raise PwrunError(f"{where}: {_name(label)} cannot be its own fallback")
            if other not in labels:
                known = ", ".join(labels)
                raise PwrunError(f"{where}: no label {other!r} in this file (its labels: {known})")
            if other in spec.fallback[:index]:
                raise PwrunError(f"{where}: {other!r} is already a fallback")


def _labels(source: str, data: dict[Any, Any], base: Path) -> dict[str, ExecutorSpec]:
    specs = {}
    for label, entry in data.items():
        origin: dict[str, tuple[str, ...]] = {}
        try:
            _check_label(label)
            if not isinstance(entry, dict):
                raise ValueError("expected a mapping of settings")
            if "POOL" in entry or "RESOURCE" in entry:
                entry, origin = from_legacy(entry)
            spec = executor_spec(entry)
            if isinstance(spec, ClusterSpec):
                spec = _with_env_files(spec, base, origin)
            specs[label] = spec
        except ValueError as exc:
            raise PwrunError(f"{source}: {describe(label, exc, origin)}") from None
        specs[label].written = (entry, origin)
    return specs


def _with_env_files(spec: C, base: Path, origin: Mapping[str, tuple[str, ...]]) -> C:
    """`spec` with its requirements file's lines added to `packages` and its conda environment
    file read; relative paths are relative to the executors file (`base`)."""

    def read(field: str, what: str) -> str:
        file = base / Path(getattr(spec, field)).expanduser()
        try:
            return read_text(file, what)
        except PwrunError as exc:
            raise FieldError(origin.get(field, (field,)), str(exc)) from None

    if spec.requirements:
        lines = read("requirements", "the requirements file")
        try:
            spec = spec.model_copy(update={"packages": [*spec.packages, *requirement_lines(lines)]})
        except ValueError as exc:
            raise FieldError(("requirements",), f"{spec.requirements}: {exc}") from None
    if spec.conda_environment:
        text = read("conda_environment", "the conda environment file")
        try:
            pinned_environment(text, workstation_parsl(), workstation_python())  # now, not there
        except ValueError as exc:
            where = origin.get("conda_environment", ("conda_environment",))
            raise FieldError(where, f"{spec.conda_environment}: {exc}") from None
        spec._environment = text
    return spec


def requirement_lines(text: str) -> list[str]:
    """The requirement strings of a pip requirements file: comments and blank lines skipped;
    pip's options (`-r`, `--index-url`...) are refused, naming the line."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise ValueError(f"line {number}: pip options are not read here, only requirements")
        try:
            found.append(_requirement(line))
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
    return found


def by_scheduler(
    specs: Mapping[str, ExecutorSpec], schedulers: Mapping[str, str], source: str
) -> dict[str, ExecutorSpec]:
    """`specs` again as their sites' schedulers call for: `schedulers` gives a cluster's
    provider (`default_provider` of its facts), which entries without `provider` take; one
    given must be of its family. Errors name `source`, the label and the field."""
    resolved = dict(specs)
    for label, spec in specs.items():
        if isinstance(spec, LocalSpec) or spec.site not in schedulers:
            continue
        entry, origin = spec.written
        try:
            check_provider(entry, schedulers[spec.site])
            again = executor_spec(entry, schedulers[spec.site])
        except ValueError as exc:
            raise PwrunError(f"{source}: {describe(label, exc, origin)}") from None
        if isinstance(again, ClusterSpec):  # the env files as read the first time
            again = again.model_copy(update={"packages": spec.packages})
            again._environment = spec.environment
        again.written = spec.written
        resolved[label] = again
    return resolved


def _name(part: object) -> str:
    """A label or field as written when it is a plain name, else quoted (never a line break)."""
    return part if isinstance(part, str) and validation.LABEL.fullmatch(part) else repr(part)


def describe(label: object, exc: ValueError, origin: Mapping[str, tuple[str, ...]] = {}) -> str:
    """Every problem as `label.field: message`; `origin` renames fields (legacy names)."""
    if isinstance(exc, ValidationError):
        model = MODEL_NAMES.get(exc.title)
        return describe_validation(
            exc,
            (label,),
            name=_name,
            rename=lambda loc: _renamed(loc, origin),
            explain=_explainer(model),
        )
    loc = exc.loc if isinstance(exc, FieldError) else ()
    return f"{dotted((label, *loc), _name)}: {exc}"


def _explainer(model: type[BaseModel] | None) -> Callable[[ErrorDetails], str]:
    """Pydantic's messages, but another kind of entry's field says where it is not allowed."""

    def explain(error: ErrorDetails) -> str:
        field = error["loc"][0] if error["loc"] else None
        if error["type"] == "extra_forbidden" and field in MPI_ONLY and model is SlurmSpec:
            return "allowed with kind: mpi only"
        if error["type"] == "extra_forbidden" and field in ALL_FIELDS and model in WHERE:
            return f"not allowed {WHERE[model]}"
        if error["type"] == "literal_error" and field == "kind":
            return "Input should be 'htex' or 'mpi'"
        return validation_message(error)

    return explain


def _renamed(loc: Loc, origin: Mapping[str, tuple[str, ...]]) -> Loc:
    """`loc` with its field replaced by where it came from (a legacy name)."""
    return (*origin.get(str(loc[0]), loc[:1]), *loc[1:]) if loc else loc
