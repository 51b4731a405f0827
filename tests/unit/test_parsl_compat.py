"""The installed Parsl still behaves as pwrun.parslcfg.compat assumes: one test per assumption,
so a Parsl upgrade that breaks one fails one named test."""

from __future__ import annotations

import contextlib
import inspect
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import parsl
import pytest
from parsl import DataFlowKernel, File, bash_app, python_app
from parsl.config import Config
from parsl.curvezmq import _load_certificate
from parsl.dataflow.dependency_resolvers import DEEP_DEPENDENCY_RESOLVER
from parsl.dataflow.dflow import DataFlowKernelLoader
from parsl.dataflow.memoization import BasicMemoizer
from parsl.errors import ConfigurationError, NoDataFlowKernelError
from parsl.executors import HighThroughputExecutor, ThreadPoolExecutor
from parsl.executors.high_throughput.executor import DEFAULT_LAUNCH_CMD
from parsl.jobs.states import JobState
from parsl.monitoring import MonitoringHub
from parsl.providers import LocalProvider, PBSProProvider, SlurmProvider, TorqueProvider
from parsl.providers.cluster_provider import ClusterProvider
from parsl.providers.errors import SchedulerMissingArgs
from parsl.providers.torque.torque import translate_table

from pwrun.parslcfg import compat, workflow
from pwrun.parslcfg.render import make_certificates

ROOT = Path(__file__).resolve().parents[2]
SLURM_REPLIES = {"sbatch": "Submitted batch job 42\n", "sacct": "42 RUNNING\n", "scancel": ""}


# --- the supported range ---------------------------------------------------------------------


def test_installed_parsl_is_a_supported_release() -> None:
    compat.check_parsl_version(parsl.__version__, allow=False)
    # Parsl calls itself "2026.10.05" where PyPI says "2026.10.5"
    compat.check_parsl_version(compat.SUPPORTED_PARSL[0].replace(".", ".0"), allow=False)


def test_the_package_requires_the_supported_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (parsl_requirement,) = [r for r in project["dependencies"] if r.startswith("parsl")]
    first, *_, last = compat.SUPPORTED_PARSL
    assert parsl_requirement == f"parsl>={first},<={last}"


def test_an_unknown_parsl_is_one_line_naming_both_and_the_override() -> None:
    with pytest.raises(compat.UnsupportedParsl) as refused:
        compat.check_parsl_version("2099.1.1", allow=False)
    message = str(refused.value)
    assert "\n" not in message and refused.value.exit_code == 2
    assert "parsl 2099.1.1 is installed" in message
    assert all(version in message for version in compat.SUPPORTED_PARSL)
    assert f"{compat.ALLOW_ENV}=1" in message


def test_pwrun_run_refuses_an_unknown_parsl_before_anything_starts(tmp_path: Path) -> None:
    script = "import sys, parsl; parsl.__version__ = '2099.1.1'; from pwrun.cli import app; app()"
    proc = subprocess.run(
        [sys.executable, "-c", script, "run", str(ROOT / "examples/hello.py")],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PWRUN_HOME": str(tmp_path), compat.ALLOW_ENV: ""},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: parsl 2099.1.1 is installed; pwrun supports parsl ")
    assert proc.stderr.count("\n") == 1 and not (tmp_path / "runs").exists()


def test_the_override_warns_instead(capsys: pytest.CaptureFixture[str]) -> None:
    compat.check_parsl_version("2099.1.1", allow=True)
    assert "warning: parsl 2099.1.1 is installed" in capsys.readouterr().err


# --- providers: execute_wait and _write_submit_script ------------------------------------------


@pytest.fixture
def slurm_commands(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Commands SlurmProvider gives execute_wait (mocked as Parsl's own tests do)."""
    commands: list[str] = []

    def execute_wait(self: Any, cmd: str, timeout: float | None = None) -> tuple[int, str, str]:
        commands.append(cmd)
        return 0, SLURM_REPLIES.get(cmd.split()[0], ""), ""

    monkeypatch.setattr(SlurmProvider, "execute_wait", execute_wait)
    return commands


def test_slurm_provider_probes_sacct_through_execute_wait_in_init(
    slurm_commands: list[str],
) -> None:
    SlurmProvider()
    assert slurm_commands == ["sacct -X"]


def test_slurm_provider_runs_every_scheduler_command_through_execute_wait(
    slurm_commands: list[str], tmp_path: Path
) -> None:
    provider = SlurmProvider()
    provider.script_dir = str(tmp_path)
    job = provider.submit("true", 1, "block")
    provider.status([job])
    provider.cancel([job])
    assert [cmd.split()[0] for cmd in slurm_commands] == ["sacct", "sbatch", "sacct", "scancel"]
    assert slurm_commands[1] == f"sbatch {tmp_path}/{os.listdir(tmp_path)[0]}"


def test_submit_scripts_are_written_by_write_submit_script_under_script_dir(
    slurm_commands: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert list(inspect.signature(ClusterProvider._write_submit_script).parameters) == [
        "self", "template", "script_filename", "job_name", "configs",
    ]  # fmt: skip
    written: list[tuple[str, str]] = []
    monkeypatch.setattr(
        SlurmProvider,
        "_write_submit_script",
        lambda self, template, filename, job_name, configs: written.append((filename, template)),
    )
    provider = SlurmProvider()
    provider.script_dir = str(tmp_path)
    provider.submit("true", 1, "block")
    ((filename, template),) = written
    assert filename.startswith(f"{tmp_path}/block.")
    assert "#SBATCH --output=${job_stdout_path}" in template
    assert slurm_commands[-1] == f"sbatch {filename}"


@pytest.mark.parametrize("kind", [TorqueProvider, PBSProProvider])
def test_pbs_providers_qsub_qdel_and_keep_jobs_in_resources(
    kind: type[TorqueProvider], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[str] = []

    def execute_wait(self: Any, cmd: str, timeout: float | None = None) -> tuple[int, str, str]:
        commands.append(cmd)
        return 0, "some banner\n42.server\n\n" if cmd.startswith("qsub") else "", ""

    monkeypatch.setattr(kind, "execute_wait", execute_wait)
    provider = kind(queue="q", account="a")
    provider.script_dir = str(tmp_path)
    job = provider.submit("true", 1, "block")
    assert job == "42.server"  # the last non-empty line
    assert commands[0].startswith("qsub  -q q -A a " + str(tmp_path))
    assert set(provider.resources[job]) >= {"status"}
    monkeypatch.setattr(kind, "_status", lambda self: None)
    compat.set_job_states(provider, {job: "R"})
    assert [s.state for s in provider.status([job])] == [JobState.RUNNING]
    compat.set_job_states(provider, {})  # qstat no longer lists it
    assert [s.state for s in provider.status([job])] == [JobState.COMPLETED]
    provider.cancel([job])
    assert commands[-1] == "qdel 42.server"


def test_torque_states_are_qstats_letters() -> None:
    assert translate_table["R"] == JobState.RUNNING and translate_table["Q"] == JobState.PENDING
    assert translate_table["C"] == JobState.COMPLETED and translate_table["H"] == JobState.HELD


class Seams(compat.SchedulerSeams):
    """compat's seams, recording what they are given."""

    label = "seams"
    cmd_timeout = 7

    def scheduler_command(self, cmd: str, timeout: float) -> tuple[int, str, str]:
        self.ran = (cmd, timeout)
        return 0, "", ""

    def write_script(self, script_filename: str, script: str) -> None:
        self.written = (script_filename, script)


def test_execute_wait_defaults_to_the_providers_cmd_timeout() -> None:
    assert list(inspect.signature(ClusterProvider.execute_wait).parameters) == [
        "self", "cmd", "timeout",
    ]  # fmt: skip
    assert inspect.signature(ClusterProvider.execute_wait).parameters["timeout"].default is None
    seams = Seams()
    seams.execute_wait("squeue")
    assert seams.ran == ("squeue", 7)
    seams.execute_wait("squeue", 3)
    assert seams.ran == ("squeue", 3)


def test_compat_fills_in_submit_scripts_as_parsl_does(
    slurm_commands: list[str], tmp_path: Path
) -> None:
    template = "#!/bin/sh\n#SBATCH --job-name=${jobname}\n${user_script}\n"
    configs = {"user_script": "process_worker_pool.py"}
    SlurmProvider()._write_submit_script(template, str(tmp_path / "parsl.sh"), "j", configs)
    seams = Seams()
    seams._write_submit_script(template, "ours.sh", "j", configs)
    assert seams.written == ("ours.sh", (tmp_path / "parsl.sh").read_text())
    with pytest.raises(SchedulerMissingArgs):
        seams._write_submit_script(template, "ours.sh", "j", {})


# --- the worker command ---------------------------------------------------------------------


@pytest.mark.parametrize("field", compat.LAUNCH_FIELDS)
def test_default_launch_cmd_has_each_field_compat_replaces(field: str) -> None:
    assert field in DEFAULT_LAUNCH_CMD


def test_a_parsl_without_a_field_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compat, "DEFAULT_LAUNCH_CMD", "process_worker_pool.py -a {addresses}")
    with pytest.raises(compat.UnsupportedParsl, match=r"has no '--port=\{worker_port\}'"):
        compat.worker_launch_cmd("10.0.0.1", 1, "/certs")


# --- certificates ---------------------------------------------------------------------------


def test_load_certificate_demands_a_secret_key_line(tmp_path: Path) -> None:
    cert_dir = make_certificates(tmp_path)
    assert {compat.CLIENT_KEY, compat.SERVER_KEY} <= set(os.listdir(cert_dir))
    public = _load_certificate(cert_dir, name="server")[0]
    site = tmp_path / "site"
    site.mkdir(mode=0o700)
    (site / compat.SERVER_KEY).write_text(
        f'metadata\ncurve\n    public-key = "{public.decode()}"\n'
    )
    with pytest.raises(ValueError, match="No secret key"):
        _load_certificate(site, name="server")
    (site / compat.SERVER_KEY).write_text(compat.site_server_key(cert_dir))
    assert _load_certificate(site, name="server")[0] == public


# --- a loaded DataFlowKernel ----------------------------------------------------------------


def some_settings() -> dict[str, Any]:
    """A value for each Config setting, none of them its default."""
    return {
        "executors": [ThreadPoolExecutor(label="mine")],
        "memoizer": BasicMemoizer(memoize=False),
        "dependency_resolver": DEEP_DEPENDENCY_RESOLVER,
        "exit_mode": "wait",
        "garbage_collect": False,
        "internal_tasks_max_threads": 3,
        "retries": 2,
        "retry_handler": lambda exception, task_record: 1.0,
        "run_dir": "elsewhere",
        "std_autopath": lambda task_record, kind: kind,
        "strategy": "none",
        "strategy_period": 1,
        "max_idletime": 7.0,
        "monitoring": MonitoringHub.__new__(MonitoringHub),  # made whole, it needs sqlalchemy
        "usage_tracking": 1,
        "project_name": "project",
        "initialize_logging": False,
    }


def test_config_keeps_each_setting_as_the_attribute_of_its_name() -> None:
    settings = some_settings()
    assert set(compat.config_defaults()) == set(settings)
    config = Config(**settings)
    for name, value in settings.items():
        assert getattr(config, name) == (tuple(value) if name == "executors" else value), name
    assert all(getattr(Config(), n) == d for n, d in compat.config_defaults().items() if d)


def test_pwrun_decides_each_config_setting() -> None:
    """A setting a new Parsl adds is kept from the workflow's Config or replaced: decide."""
    assert not set(workflow.KEPT) & set(workflow.REPLACED)
    assert sorted(workflow.KEPT + workflow.REPLACED) == sorted(compat.config_defaults())


class Loads:
    """compat.loads_on_demand over configs of one thread pool each, recording what it does."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.own = self.config("own")
        self.given: list[Config | None] = []
        self.started: list[DataFlowKernel] = []
        self.shielded = 0

    def config(self, label: str) -> Config:
        return Config(executors=[ThreadPoolExecutor(label=label)], run_dir=str(self.run_dir))

    def build(self, given: Config | None) -> Config:
        self.given.append(given)
        return self.config("built")

    @contextlib.contextmanager
    def shield(self) -> Iterator[None]:
        self.shielded += 1
        yield

    def __call__(self) -> AbstractContextManager[list[DataFlowKernel]]:
        return compat.loads_on_demand(self.own, self.build, self.started.append, self.shield)


@pytest.fixture
def loads(tmp_path: Path) -> Iterator[Loads]:
    original = vars(DataFlowKernelLoader).copy(), parsl.load, parsl.dfk
    yield Loads(tmp_path)
    assert (vars(DataFlowKernelLoader), parsl.load, parsl.dfk) == original
    with pytest.raises(NoDataFlowKernelError):
        parsl.dfk()


@python_app
def where() -> list[str]:
    return compat.executor_labels(parsl.dfk())


def test_the_workflows_load_loads_the_build_of_its_config(loads: Loads) -> None:
    for _ in range(2):  # unloading lets a later run load again
        with loads() as dfks:
            mine = loads.config("mine")
            dfk = parsl.load(mine)
            assert dfks == loads.started == [dfk] and loads.given[-1] is mine
            assert parsl.load(mine) is parsl.load() is DataFlowKernelLoader.load() is dfk
            with pytest.raises(ConfigurationError, match="already been loaded"):
                parsl.load(loads.config("other"))
            assert where().result() == ["built"]
            loads.started.clear()
        assert dfk.cleanup_called and loads.shielded


@pytest.mark.parametrize("load", [lambda own: parsl.load(), lambda own: parsl.load(own)])
def test_no_config_or_pwruns_own_loads_the_build_of_none(
    loads: Loads, load: Callable[[Config], DataFlowKernel]
) -> None:
    with loads() as dfks:
        assert load(loads.own) is dfks[0] and loads.given == [None]
        assert parsl.load(loads.own) is parsl.load() is dfks[0]


def test_an_app_invoked_before_any_load_loads_the_build_of_none(loads: Loads) -> None:
    with loads() as dfks:
        assert where().result() == ["built"]
        assert loads.given == [None] and len(dfks) == 1


def test_a_with_block_cleans_up_its_dfk_once_and_a_later_load_builds_again(
    loads: Loads,
) -> None:
    with loads() as dfks:
        with parsl.load(loads.config("first")) as first:
            assert where().result() == ["built"]
        assert first.cleanup_called
        with pytest.raises(NoDataFlowKernelError):  # as in Parsl, no DFK after the block
            where()
        second = parsl.load(loads.config("second"))
        assert dfks == loads.started == [first, second] and len(loads.given) == 2
    assert second.cleanup_called  # and the first is not cleaned up again (Parsl would raise)


class TestLoadedHighThroughputExecutor:
    """One encrypted HTEX as pwrun renders a site's, loaded with no workers."""

    @pytest.fixture(scope="class")
    def loaded(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataFlowKernel]:
        run_dir = tmp_path_factory.mktemp("run")
        htex = HighThroughputExecutor(
            label="site",
            address="127.0.0.1",
            launch_cmd=compat.worker_launch_cmd("10.1.2.3", 4567, "/remote/cert {dir}"),
            provider=LocalProvider(init_blocks=0, min_blocks=0, max_blocks=1),
            encrypted=True,
            interchange_launch_cmd=list(compat.INTERCHANGE_LAUNCH_CMD),
        )
        assert htex.cert_dir is None
        compat.use_certificates(htex, str(make_certificates(run_dir)))
        config = Config(executors=[htex], run_dir=str(run_dir))
        with compat.loads_on_demand(config, lambda given: config, lambda dfk: None):
            yield parsl.load(config)

    @staticmethod
    def htex(dfk: DataFlowKernel) -> HighThroughputExecutor:
        executor = dfk.executors["site"]
        assert isinstance(executor, HighThroughputExecutor)
        return executor

    def test_htex_formats_the_launch_cmd_with_ours_kept(self, loaded: DataFlowKernel) -> None:
        cmd = self.htex(loaded)._get_launch_command("7")  # formatted at start, then per block
        assert " -a 10.1.2.3 " in cmd and " --port=4567 " in cmd and " --block_id=7 " in cmd
        assert " --cert_dir '/remote/cert {dir}' " in cmd and " --logconf=None " in cmd

    def test_cert_dir_is_an_attribute_htex_keeps(self, loaded: DataFlowKernel) -> None:
        assert "cert_dir" not in inspect.signature(HighThroughputExecutor).parameters
        cert_dir = Path(self.htex(loaded).cert_dir or "")
        assert cert_dir.name == "certificates" and cert_dir.parent.name.startswith("run")

    def test_interchange_runs_in_its_own_session(self, loaded: DataFlowKernel) -> None:
        (pid,) = compat.interchange_pids(loaded)
        proc = self.htex(loaded).interchange_proc
        assert proc is not None and proc.pid == pid and proc.poll() is None
        assert os.getsid(pid) == pid != os.getsid(0)

    def test_internal_executor_is_left_out_of_the_labels(self, loaded: DataFlowKernel) -> None:
        assert compat.INTERNAL_EXECUTOR in loaded.executors
        assert compat.executor_labels(loaded) == ["site"]

    def test_an_unknown_label_is_named_by_the_error(self, loaded: DataFlowKernel) -> None:
        @python_app(executors=["nope"])
        def app() -> None:
            pass

        with pytest.raises(ValueError) as failed:
            app().result(timeout=30)
        assert compat.invalid_executor(failed.value) == "nope"


# --- tasks as an executor sees them -----------------------------------------------------------


class Recording(ThreadPoolExecutor):
    """Records what the DFK gives `submit`."""

    calls: list[tuple[Any, tuple[Any, ...], dict[str, Any]]]

    def submit(self, func: Any, resource_specification: dict, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((func, args, kwargs))
        return super().submit(func, resource_specification, *args, **kwargs)


@bash_app
def echo_app(inputs: Any = (), outputs: Any = (), stdout: Any = None, stderr: Any = None) -> str:
    return "echo hi"


@python_app
def touch_app(path: Any, inputs: Any = (), outputs: Any = ()) -> str:
    open(outputs[0], "w").close()
    return str(path)


@pytest.fixture
def recording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Recording]:
    monkeypatch.chdir(tmp_path)
    executor = Recording(label="rec")
    executor.calls = []
    with parsl.load(Config(executors=[executor], run_dir=str(tmp_path / "runinfo"))):
        yield executor


def test_submit_gets_files_with_datafutures_replaced_and_outputs_copied(
    recording: Recording, tmp_path: Path
) -> None:
    made = File(str(tmp_path / "made.txt"))
    first = touch_app(File("arg.txt"), outputs=[made])
    second = touch_app(1, inputs=[first.outputs[0]], outputs=[File("o.txt")])
    second.result(timeout=30)
    (_, args, kwargs), (_, _, later) = recording.calls
    assert isinstance(args[0], File) and args[0].path == "arg.txt"
    assert kwargs["outputs"][0] is not made and kwargs["outputs"][0].path == made.path
    (given,) = later["inputs"]
    assert isinstance(given, File) and given.filepath == made.path and given.local_path is None


def test_submit_gets_streams_as_paths_with_auto_logname_resolved(
    recording: Recording, tmp_path: Path
) -> None:
    echo_app(stdout=parsl.AUTO_LOGNAME, stderr=("e.txt", "w")).result(timeout=30)
    ((func, _, kwargs),) = recording.calls
    assert compat.is_bash_app(func) and not compat.is_bash_app(touch_app.func)
    assert kwargs["stdout"].startswith(str(tmp_path / "runinfo")) and kwargs["stdout"].endswith(
        ".stdout"
    )
    assert compat.std_stream("stdout", kwargs["stdout"]) == (kwargs["stdout"], "a+")
    assert compat.std_stream("stderr", kwargs["stderr"]) == ("e.txt", "w")
    assert compat.std_stream("stdout", File("/x/f")) == ("/x/f", "w")


def test_an_apps_exception_is_its_result_and_the_dfk_raises_it(recording: Recording) -> None:
    @python_app
    def fails() -> None:
        raise KeyError("on purpose")

    future = fails()
    with pytest.raises(KeyError):
        future.result(timeout=30)
    ((func, args, kwargs),) = recording.calls
    assert compat.app_failed(func(*args, **kwargs)) and not compat.app_failed(None)


# --- failover --------------------------------------------------------------------------------


def test_a_retry_handler_moves_the_next_try_by_the_task_records_executor(tmp_path: Path) -> None:
    seen: list[tuple[int, str, str]] = []

    def handler(exc: Exception, task: Any) -> float:
        seen.append((compat.task_id(task), compat.task_app(task), compat.task_label(task)))
        compat.move_task(task, "b")
        return 0

    @python_app(executors=["a"])
    def which() -> str:
        import threading

        if threading.current_thread().name.startswith("ThreadPoolExecutor-a"):
            raise RuntimeError("a fails")
        return threading.current_thread().name

    executors = [ThreadPoolExecutor(label="a"), ThreadPoolExecutor(label="b")]
    with parsl.load(Config(executors=executors, run_dir=str(tmp_path), retry_handler=handler)):
        future = which()
        assert future.result(timeout=30).startswith("ThreadPoolExecutor-b")
    assert seen == [(future.tid, "which", "a")]


def test_an_executor_in_bad_state_fails_its_tasks_and_raises_its_exception_on_submit(
    tmp_path: Path,
) -> None:
    executor = HighThroughputExecutor(
        label="idle", address="127.0.0.1", provider=LocalProvider(init_blocks=0, max_blocks=0),
        encrypted=True,
    )  # fmt: skip

    @python_app(executors=["idle"])
    def never() -> None:
        pass

    lost = RuntimeError("site gone")
    with parsl.load(Config(executors=[executor], run_dir=str(tmp_path))):
        queued = never()
        compat.fail_executor(executor, lost)
        with pytest.raises(Exception) as failed:
            queued.result(timeout=30)
        assert compat.infrastructure_failure(failed.value, executor)  # BadStateException
        with pytest.raises(RuntimeError) as refused:
            never().result(timeout=30)
        assert refused.value is lost and compat.infrastructure_failure(lost, executor)


def test_an_apps_own_exception_is_not_the_infrastructures(tmp_path: Path) -> None:
    @python_app(executors=["threads"])
    def fails() -> None:
        raise ValueError("mine")

    failures: list[bool] = []
    executor = ThreadPoolExecutor(label="threads")

    def handler(exc: Exception, task: Any) -> float:
        failures.append(compat.infrastructure_failure(exc, executor))
        return 1

    config = Config(executors=[executor], run_dir=str(tmp_path), retry_handler=handler)
    with parsl.load(config), pytest.raises(ValueError):
        fails().result(timeout=30)
    assert failures == [False]
    assert all(issubclass(kind, Exception) for kind in compat.INFRASTRUCTURE_ERRORS)
