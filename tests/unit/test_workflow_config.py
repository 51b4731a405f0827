"""A workflow's own Config under `pwrun run`: what is kept and replaced, and its labels checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from parsl.config import Config
from parsl.executors import ThreadPoolExecutor

from pwrun.errors import PwrunError
from pwrun.parslcfg.workflow import (
    KEPT,
    REPLACED,
    check_labels,
    merge,
    named_labels,
    summary,
)
from tests.unit.test_parsl_compat import some_settings

SOURCE = "ex.yml"


def pools(*labels: str) -> list[ThreadPoolExecutor]:
    return [ThreadPoolExecutor(label=label) for label in labels]


def runs(*labels: str) -> Config:
    """A Config as pwrun renders one: its executors, run dir and scaling."""
    return Config(executors=pools(*labels), run_dir="/runs/1/runinfo", strategy_period=0.2)


def test_the_workflows_settings_are_kept_and_the_runs_replace_the_rest() -> None:
    settings = some_settings()
    workflow = Config(**settings | {"executors": pools("b", "a")})
    run = runs("a", "b", "c")
    merged = merge(workflow, run, SOURCE)
    assert [e.label for e in merged.executors] == ["b", "a"]  # the workflow's order, no "c"
    assert list(merged.executors) == [run.executors[1], run.executors[0]]  # the run's own
    for name in KEPT:
        assert getattr(merged, name) is settings[name], name
    for name in REPLACED[1:]:
        assert getattr(merged, name) == getattr(run, name), name


def test_a_label_the_executors_file_lacks_is_named_with_the_file() -> None:
    with pytest.raises(PwrunError) as refused:
        merge(Config(executors=pools("a", "gpu")), runs("a", "b"), SOURCE)
    assert str(refused.value) == (
        "ex.yml has no label 'gpu', which the workflow's Config uses (its labels: a, b)"
    )
    assert refused.value.exit_code == 2


def test_the_summary_names_what_is_kept_used_and_ignored() -> None:
    line = summary(Config(**some_settings() | {"executors": pools("a")}), runs("a"), SOURCE)
    assert line == (
        "pwrun: using your Config's retries=2, retry_handler, memoizer, dependency_resolver, "
        "exit_mode='wait', garbage_collect=False, internal_tasks_max_threads=3, std_autopath, "
        "monitoring, usage_tracking=1, project_name='project'; executors a from ex.yml; "
        "pwrun's own run_dir, "
        "initialize_logging, strategy, strategy_period, max_idletime"
    )
    plain = summary(Config(executors=pools("a", "b")), runs("a", "b"), SOURCE)
    assert plain == "pwrun: using your Config's defaults; executors a, b from ex.yml"


WORKFLOW = """\
import parsl
from parsl import bash_app, python_app
from parsl.executors import HighThroughputExecutor

config = parsl.Config(executors=[
    HighThroughputExecutor(label="cpu"),
    parsl.executors.ThreadPoolExecutor(label="threads"),
    HighThroughputExecutor(label=computed),
])

@python_app(executors=["gpu", "cpu"])
def a(): ...

@bash_app(executors=("shell",))
def b(): ...

@python_app(executors="all")
def c(): ...

d = python_app(f, executors=["later"])
plot(x, label="not an executor")
"""


def test_labels_named_literally_are_found_with_their_first_line() -> None:
    assert named_labels(WORKFLOW) == {
        "cpu": 6, "threads": 7, "gpu": 11, "shell": 14, "later": 20,
    }  # fmt: skip


def test_a_workflow_naming_a_missing_label_is_refused_at_its_first_use(tmp_path: Path) -> None:
    workflow = tmp_path / "flow.py"
    workflow.write_text(WORKFLOW)
    check_labels(workflow, ["cpu", "threads", "gpu", "shell", "later"], SOURCE)
    with pytest.raises(PwrunError, match=rf"^ex.yml has no label 'gpu', which {workflow}:11 uses "):
        check_labels(workflow, ["cpu", "threads", "shell"], SOURCE)


def test_a_workflow_python_cannot_parse_is_left_to_python(tmp_path: Path) -> None:
    workflow = tmp_path / "flow.py"
    workflow.write_text("def (:\n")
    check_labels(workflow, [], SOURCE)
