"""The steps of the GitHub Action (action.yml at the repository's root), as a script that runs
anywhere: `python -m pwrun.action run` and `python -m pwrun.action down`.

Inputs come as environment variables, never as command-line text (`PWRUN_WORKFLOW`,
`PWRUN_ARGS`, `PWRUN_EXECUTORS`, `PWRUN_INVENTORY`, `PWRUN_START`, `PWRUN_TIMEOUT_MINUTES`);
secrets too, under their own names (`PW_API_KEY`, cloud credentials), which pwrun reads itself.
Outputs go to `$GITHUB_OUTPUT`: `run-id`, `exit-code`, `timed-out`, `report` and `junit`.
`run` exits with pwrun's exit code, so the job fails exactly when the workflow does, or when the
timeout interrupts it.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from pwrun.errors import PwrunError
from pwrun.process import INTERRUPTED, STOP_SIGNALS
from pwrun.runstate import RunStatus, all_runs

GRACE = 120.0  # seconds pwrun gets to tear down after the timeout interrupts it
LAST_RUN = "pwrun-last-run"  # under RUNNER_TEMP: the run id, for the `down` step


def inputs(env: dict[str, str]) -> tuple[list[str], float | None]:
    """`pwrun run`'s arguments and the timeout in seconds (None: none), from the inputs."""
    workflow = env.get("PWRUN_WORKFLOW", "")
    if not workflow:
        raise PwrunError("input 'workflow' is required")
    try:
        args = shlex.split(env.get("PWRUN_ARGS", ""))
    except ValueError as exc:
        raise PwrunError(f"input 'args': {exc}") from None
    start = env.get("PWRUN_START", "false").strip().lower()
    if start not in ("true", "false"):
        raise PwrunError(f"input 'start': {start!r} is neither true nor false")
    timeout = env.get("PWRUN_TIMEOUT_MINUTES", "").strip() or "0"
    try:
        minutes = float(timeout)
    except ValueError:
        minutes = -1
    if not 0 <= minutes < float("inf"):
        raise PwrunError(f"input 'timeout-minutes': {timeout!r} is not a number of minutes >= 0")
    options = []
    for flag, name in (("-e", "PWRUN_EXECUTORS"), ("-i", "PWRUN_INVENTORY")):
        if value := env.get(name, ""):
            options += [flag, value]
    if start == "true":
        options.append("--start")
    return [*options, "--", workflow, *args], minutes * 60 or None


def outputs(values: dict[str, str]) -> None:
    """Append the step's outputs to $GITHUB_OUTPUT (printed when there is none)."""
    lines = "".join(f"{name}={value}\n" for name, value in values.items())
    if path := os.environ.get("GITHUB_OUTPUT"):
        with open(path, "a") as out:
            out.write(lines)
    else:
        sys.stdout.write(lines)


def pwrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "pwrun.cli", *args]


def run() -> int:
    """`pwrun run` with the inputs, its report and JUnit file under $RUNNER_TEMP; interrupted
    (Ctrl-C, so it tears down) at the timeout or when the job is cancelled; torn down with
    `pwrun down` if it could not finish that itself."""
    argv, timeout = inputs(dict(os.environ))
    out_dir = Path(tempfile.mkdtemp(prefix="pwrun-", dir=os.environ.get("RUNNER_TEMP")))
    report, junit = out_dir / "report.json", out_dir / "junit.xml"
    proc = subprocess.Popen(
        pwrun("run", "--report", str(report), "--junit", str(junit), *argv),
        start_new_session=True,  # a group of its own: interrupted as a terminal would
    )
    interrupt = lambda *_: os.killpg(proc.pid, signal.SIGINT)  # noqa: E731  # a cancelled job
    for signum in STOP_SIGNALS:
        signal.signal(signum, interrupt)
    timed_out = False
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        print(f"::error title=pwrun::timed out after {timeout:.0f} s: interrupting the run",
              flush=True)  # fmt: skip
        interrupt()
        try:
            code = proc.wait(timeout=GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait()
    made = [record for record in all_runs() if record.process.pid == proc.pid]
    run_id = made[-1].id if made else ""
    if run_id:
        Path(os.environ.get("RUNNER_TEMP", out_dir), LAST_RUN).write_text(run_id)
        if made[-1].status is not RunStatus.DOWN:  # pwrun was killed before its teardown ended
            down(run_id)
    outputs({"run-id": run_id, "exit-code": str(code), "timed-out": str(timed_out).lower(),
             "report": str(report) if report.is_file() else "",
             "junit": str(junit) if junit.is_file() else ""})  # fmt: skip
    if code:
        print(f"::error title=pwrun::pwrun run exited with {code}", flush=True)
    return code or (INTERRUPTED if timed_out else 0)


def down(run_id: str | None = None) -> int:
    """`pwrun down` for the run (by default the one `run` recorded, else every dead run), if
    it is not torn down yet."""
    recorded = Path(os.environ.get("RUNNER_TEMP", tempfile.gettempdir()), LAST_RUN)
    run_id = run_id or (recorded.read_text().strip() if recorded.is_file() else None)
    if not any(r.status is not RunStatus.DOWN and run_id in (None, r.id) for r in all_runs()):
        return 0
    return subprocess.run(pwrun("down", *([run_id] if run_id else []))).returncode


def main(argv: list[str]) -> int:
    steps = {"run": run, "down": down}
    if len(argv) != 1 or argv[0] not in steps:
        print("usage: python -m pwrun.action run|down", file=sys.stderr)
        return 2
    try:
        return steps[argv[0]]()
    except PwrunError as exc:
        print(f"::error title=pwrun::{exc}", flush=True)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
