"""Resuming a run: the checkpoints of an earlier run of the same workflow.

Every run checkpoints each finished task of an app with `cache=True` as it ends (Parsl's
BasicMemoizer, `checkpoint_mode="task_exit"`) under `runs/<id>/runinfo/NNN/checkpoint/`.
`pwrun run --resume` gives Parsl those of the run it resumes, and of the runs that run resumed
(a task served from a checkpoint is checkpointed again, but a run killed early has not yet done
so), so a task whose result is there is not run again.
"""

from __future__ import annotations

import os
import pickletools
from pathlib import Path

from parsl.utils import get_all_checkpoints

from pwrun import state
from pwrun.errors import PwrunError
from pwrun.runstate import RunRecord, all_runs

CHECKPOINT_FILE = "tasks.pkl"  # Parsl's, in each checkpoint directory


def resumed_run(workflow: Path, run_id: str | None) -> RunRecord:
    """The run to resume: `run_id`, or the latest run of the same workflow file."""
    runs = all_runs()
    if run_id is not None:
        chosen = [record for record in runs if record.id == run_id]
        if not chosen:
            raise PwrunError(
                f"--resume-from: no run {run_id!r} (see `pwrun status`, {state.runs_dir()})"
            )
        return chosen[0]
    same = [record for record in runs if same_file(record.workflow, workflow)]
    if not same:
        raise PwrunError(f"--resume: no earlier run of {workflow}")
    return same[-1]


def same_file(recorded: str, workflow: Path) -> bool:
    """True if a run's recorded workflow is `workflow` (runs record absolute paths)."""
    try:
        return Path(recorded).resolve() == workflow.resolve()
    except OSError:
        return False


def checkpoints(record: RunRecord) -> list[str]:
    """The checkpoint directories of `record` and of the runs it resumed, oldest first; a
    record cut short (the run was killed while writing it) is dropped, the rest kept."""
    directories: list[str] = []
    seen: set[str] = set()
    current: RunRecord | None = record
    while current is not None and current.id not in seen:
        seen.add(current.id)
        found = get_all_checkpoints(str(current.directory / state.PARSL_DIR))
        directories[:0] = [d for d in found if complete(Path(d) / CHECKPOINT_FILE)]
        earlier = current.resumed_from
        current = RunRecord.load(state.runs_dir() / earlier) if earlier else None
    return directories


def complete(path: Path) -> bool:
    """Cut `path` after its last whole record; False if it has none (or does not exist)."""
    good = 0
    try:
        with path.open("rb") as file:
            while file.peek(1):
                try:  # opcodes only: no object is made, no app type imported
                    for _ in pickletools.genops(file):
                        pass
                except ValueError:
                    break  # a record cut short by a kill
                good = file.tell()
        if good < path.stat().st_size:
            os.truncate(path, good)
    except OSError:
        return False
    return good > 0
