"""The GitHub Action (action.yml), its steps run here as a runner runs them: inputs and step
outputs filled into each step's `env:`, `if: always()` honoured, $GITHUB_OUTPUT files read back.
Its logic (pwrun/action.py) runs for real on the embedded local site."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pwrun.process import ProcessRef
from tests.emulators.pw_api import PwApiEmulator, pw_cluster
from tests.inventory.conftest import PW_KEY

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = Path(__file__).with_name("workflows")
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


@dataclass
class Job:
    outputs: dict[str, str]  # the action's outputs
    conclusions: dict[str, int]  # each step's exit code, by name
    failed: bool  # whether the job fails


def evaluate(text: str, inputs: dict[str, str], steps: dict[str, dict[str, str]]) -> str:
    """The expressions this action uses: inputs.X and steps.ID.outputs.X; any other fails."""

    def value(match: re.Match[str]) -> str:
        kind, _, rest = match[1].partition(".")
        if kind == "inputs":
            return inputs[rest]
        step, outputs, name = rest.split(".")
        assert kind == "steps" and outputs == "outputs", match[0]
        return steps.get(step, {}).get(name, "")

    return EXPRESSION.sub(value, text)


def run_action(given: dict[str, str], home: Path, env: dict[str, str] | None = None) -> Job:
    """Run action.yml's steps (setup-python and the pip install are the runner's own Python
    and the installed pwrun here) with `given` inputs, as a job step `uses:` it."""
    spec = ACTION["inputs"]
    assert set(given) <= set(spec)
    inputs = {name: given.get(name, spec[name].get("default", "")) for name in spec}
    assert all(inputs[name] for name, s in spec.items() if s.get("required"))
    temp = home / "runner_temp"
    temp.mkdir(exist_ok=True)
    outputs: dict[str, dict[str, str]] = {}
    conclusions: dict[str, int] = {}
    failed = False
    for number, step in enumerate(ACTION["runs"]["steps"]):
        if "uses" in step or "pip install" in step["run"]:
            continue
        if failed and step.get("if") != "always()":
            continue
        output_file = temp / f"output_{number}"
        output_file.touch()
        step_env = {name: evaluate(str(v), inputs, outputs) for name, v in
                    step.get("env", {}).items()}  # fmt: skip
        proc = subprocess.run(
            ["bash", "-e", "-c", step["run"]], cwd=home, timeout=600,
            env={**os.environ, **(env or {}), **step_env, "GITHUB_OUTPUT": str(output_file),
                 "RUNNER_TEMP": str(temp), "GITHUB_ACTION_PATH": str(ROOT),
                 "PWRUN_HOME": str(home / "state")},
        )  # fmt: skip
        conclusions[step["name"]] = proc.returncode
        failed = failed or proc.returncode != 0
        if "id" in step:
            lines = output_file.read_text().splitlines()
            outputs[step["id"]] = dict(line.split("=", 1) for line in lines)
    action_outputs = {name: evaluate(o["value"], inputs, outputs) for name, o in
                      ACTION["outputs"].items()}  # fmt: skip
    return Job(action_outputs, conclusions, failed)


def run_record(home: Path, run_id: str) -> dict[str, Any]:
    return json.loads((home / "state" / "runs" / run_id / "run.json").read_text())


def assert_torn_down(home: Path, run_id: str) -> None:
    record = run_record(home, run_id)
    assert record["status"] == "down"
    assert not any(ProcessRef(**ref).alive() for ref in record["interchanges"])


def test_inputs_reach_steps_as_environment_only() -> None:
    """No input is pasted into a script (a value could not inject shell code)."""
    for step in ACTION["runs"]["steps"]:
        assert not EXPRESSION.search(step.get("run", "")), step
    assert ACTION["runs"]["steps"][-1] == {
        "name": "Tear down",
        "if": "always()",
        "shell": "bash",
        "run": "python3 -m pwrun.action down",
    }
    assert set(ACTION["outputs"]) == {"run-id", "exit-code", "timed-out", "report", "junit"}


def test_a_workflow_that_succeeds(tmp_path: Path) -> None:
    job = run_action({"workflow": str(WORKFLOWS / "tally.py"),
                      "args": f"'{tmp_path / 'marks dir'}' 0"}, tmp_path)  # fmt: skip
    assert not job.failed and job.conclusions == {"Run the workflow": 0, "Tear down": 0}
    outputs = job.outputs
    assert (outputs["exit-code"], outputs["timed-out"]) == ("0", "false")
    assert (tmp_path / "marks dir" / "flaky").exists()  # the quoted argument, one word
    report = json.loads(Path(outputs["report"]).read_text())
    assert report["run_id"] == outputs["run-id"] and report["exit_code"] == 0
    assert Path(outputs["junit"]).read_text().startswith("<?xml")
    assert_torn_down(tmp_path, outputs["run-id"])


def test_a_failing_workflow_fails_the_job_and_is_torn_down(tmp_path: Path) -> None:
    job = run_action({"workflow": str(WORKFLOWS / "tally.py"), "args": f"{tmp_path} 5"},
                     tmp_path)  # fmt: skip
    assert job.failed and job.conclusions == {"Run the workflow": 5, "Tear down": 0}
    assert job.outputs["exit-code"] == "5" and job.outputs["run-id"]
    assert json.loads(Path(job.outputs["report"]).read_text())["exit_code"] == 5
    assert_torn_down(tmp_path, job.outputs["run-id"])


def test_the_timeout_interrupts_the_run_which_tears_down(tmp_path: Path) -> None:
    started = time.monotonic()
    job = run_action({"workflow": str(WORKFLOWS / "slow.py"), "args": "local",
                      "timeout-minutes": "0.3"}, tmp_path)  # fmt: skip
    assert time.monotonic() - started < 120  # slow.py waits 600 s
    assert job.failed and job.conclusions["Run the workflow"] == 130
    assert (job.outputs["exit-code"], job.outputs["timed-out"]) == ("130", "true")
    assert json.loads(Path(job.outputs["report"]).read_text())["error"] == "interrupted"
    assert_torn_down(tmp_path, job.outputs["run-id"])


def test_bad_inputs_are_one_annotation(tmp_path: Path) -> None:
    job = run_action({"workflow": "x.py", "timeout-minutes": "soon"}, tmp_path)
    assert job.failed and job.conclusions == {"Run the workflow": 2, "Tear down": 0}
    assert job.outputs["exit-code"] == ""


def start_run_step(home: Path) -> tuple[subprocess.Popen, dict[str, Any]]:
    """The run step on slow.py, returned once the workflow waits; and its run record."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pwrun.action", "run"], cwd=home, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PWRUN_WORKFLOW": str(WORKFLOWS / "slow.py"), "PWRUN_ARGS": "local",
             "RUNNER_TEMP": str(home), "GITHUB_OUTPUT": str(home / "output"),
             "PWRUN_HOME": str(home / "state")},
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "waiting":
            break
    (run_dir,) = (home / "state" / "runs").iterdir()
    return proc, run_record(home, run_dir.name)


@pytest.mark.parametrize("how", ["cancelled", "killed"])
def test_a_cancelled_or_killed_step_is_torn_down(tmp_path: Path, how: str) -> None:
    """Cancelled: the runner's SIGINT reaches the step, which interrupts pwrun. Killed: the
    step and pwrun die at once (kill -9); the `if: always()` step tears the run down."""
    proc, record = start_run_step(tmp_path)
    run_id = Path(record["directory"]).name
    pwrun = ProcessRef(**record["process"])
    try:
        if how == "cancelled":
            os.killpg(proc.pid, signal.SIGINT)
            assert proc.wait(timeout=60) == 130
            lines = (tmp_path / "output").read_text().splitlines()
            outputs = dict(line.split("=", 1) for line in lines)
            assert (outputs["exit-code"], outputs["run-id"]) == ("130", run_id)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
            os.kill(pwrun.pid, signal.SIGKILL)
            proc.wait(timeout=60)
            assert run_record(tmp_path, run_id)["status"] == "workflow"
            down = subprocess.run([sys.executable, "-m", "pwrun.action", "down"], cwd=tmp_path,
                                  env={**os.environ, "RUNNER_TEMP": str(tmp_path),
                                       "PWRUN_HOME": str(tmp_path / "state")})  # fmt: skip
            assert down.returncode == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not pwrun.alive()
    assert_torn_down(tmp_path, run_id)


def test_start_powers_the_clusters_on_and_teardown_powers_them_off(tmp_path: Path) -> None:
    """`start: true` is `pwrun run --start`: a PW cluster that is off is started; when the
    timeout interrupts the wait, the cluster it started is stopped again."""
    executors = tmp_path / "x.executors.yml"
    executors.write_text("job:\n  site: cold\n")
    with PwApiEmulator(api_key=PW_KEY, current=True) as api:
        api.clusters.append(pw_cluster("cold", status="off"))
        api.never_up = {"cold"}
        inventory = tmp_path / "x.pwrun.yml"
        inventory.write_text(f"plugin: pwrun\nsources:\n  pw:\n    host: {api.url}\n")
        given = {
            "workflow": str(WORKFLOWS / "slow.py"), "args": "job", "executors": str(executors),
            "inventory": str(inventory), "start": "true", "timeout-minutes": "0.1",
        }  # fmt: skip
        job = run_action(given, tmp_path, env={"PW_API_KEY": PW_KEY})
    assert job.failed and job.conclusions == {"Run the workflow": 130, "Tear down": 0}
    assert job.outputs["timed-out"] == "true"
    owned = "/api/organizations/emulated/users/alice/clusters/cold"
    assert api.actions == [("POST", f"{owned}/provision"), ("POST", f"{owned}/stop")]
    record = run_record(tmp_path, job.outputs["run-id"])
    assert (record["status"], record["started_clusters"]) == ("down", [])
    assert PW_KEY not in json.dumps(record) + Path(job.outputs["report"]).read_text()
