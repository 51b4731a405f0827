"""A workflow's own Parsl Config under `pwrun run`: what the run keeps of it, what it replaces,
and the labels a workflow names, found before anything is made."""

from __future__ import annotations

import ast
from collections.abc import Collection
from pathlib import Path

from parsl.config import Config

from pwrun.errors import PwrunError
from pwrun.parslcfg.compat import config_defaults
from pwrun.parslcfg.failover import Routing

# The workflow's to decide: how its tasks are retried, cached, checkpointed and monitored, and
# how its DataFlowKernel behaves (dependencies, `with` exit, garbage collection, stream paths).
KEPT = (
    "retries", "retry_handler", "memoizer", "dependency_resolver", "exit_mode",
    "garbage_collect", "internal_tasks_max_threads", "std_autopath", "monitoring",
    "usage_tracking", "project_name",
)  # fmt: skip
# The run's: where tasks run (its executors, matched by label), where Parsl writes (the run
# directory, its logging) and how blocks scale (as the executors file says).
REPLACED = (
    "executors", "run_dir", "initialize_logging", "strategy", "strategy_period", "max_idletime",
)  # fmt: skip
APP_DECORATORS = frozenset({"python_app", "bash_app", "join_app"})


def merge(workflow: Config, run: Config, source: str) -> Config:
    """The Config loaded for the workflow's `parsl.load(workflow)`: the run's executors of the
    workflow's labels (in its order) and REPLACED settings, the workflow's KEPT settings."""
    executors = {executor.label: executor for executor in run.executors}
    labels = [executor.label for executor in workflow.executors]
    for label in labels:
        if label not in executors:
            raise PwrunError(missing_label(source, label, "the workflow's Config", executors))
    settings = {
        name: getattr(workflow if name in KEPT else run, name) for name in config_defaults()
    }
    if isinstance(routing := run.retry_handler, Routing):  # it asks the workflow's handler
        labels += [f for label in labels for f in routing.fallbacks.get(label, ())]
        labels = list(dict.fromkeys(labels))  # their fallbacks too, once each
        routing.handler = workflow.retry_handler
        settings["retry_handler"] = routing
        if routing.retries is not None:  # the executors file's, or --retries
            settings["retries"] = routing.retries
        routing.use([executors[label] for label in labels])
    if workflow.memoizer is None:  # Parsl's default: the run's, which checkpoints
        settings["memoizer"] = run.memoizer
    return Config(**settings | {"executors": [executors[label] for label in labels]})


def summary(workflow: Config, loaded: Config, source: str) -> str:
    """One line: the workflow's settings that the run uses, its executors, what it ignores."""
    defaults = config_defaults()

    def changed(names: tuple[str, ...]) -> list[str]:
        return [name for name in names if getattr(workflow, name) != defaults[name]]

    kept = [
        f"{name}={value!r}" if isinstance(value := getattr(workflow, name), int | float | str)
        else name
        for name in changed(KEPT)
    ]  # fmt: skip
    labels = ", ".join(executor.label for executor in loaded.executors)
    parts = [
        f"pwrun: using your Config's {', '.join(kept) or 'defaults'}",
        f"executors {labels} from {source}",
    ]
    if ignored := changed(REPLACED[1:]):  # executors are always the run's
        parts.append(f"pwrun's own {', '.join(ignored)}")
    return "; ".join(parts)


def missing_label(source: str, label: str, user: str, labels: Collection[str]) -> str:
    return f"{source} has no label {label!r}, which {user} uses (its labels: {', '.join(labels)})"


def named_labels(code: str) -> dict[str, int]:
    """The executor labels a workflow's code names literally, each with its first line: an
    executor's `label="..."` and an app decorator's `executors=[...]`. Labels computed as it
    runs are not seen here; loading its Config checks those."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(code)):
        if not isinstance(node, ast.Call):
            continue
        callee = node.func
        name = callee.id if isinstance(callee, ast.Name) else getattr(callee, "attr", "")
        for keyword in node.keywords:
            if name.endswith("Executor") and keyword.arg == "label":
                values = [keyword.value]
            elif name in APP_DECORATORS and keyword.arg == "executors":
                values = getattr(keyword.value, "elts", [])  # a list or tuple; not "all"
            else:
                continue
            for value in values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    found[value.value] = min(found.get(value.value, value.lineno), value.lineno)
    return found


def check_labels(workflow: Path, labels: Collection[str], source: str) -> None:
    """Refuse a workflow that names a label the run lacks, before anything is made."""
    try:
        named = named_labels(workflow.read_text())
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return  # running the script reports it, as Python would
    for label, line in sorted(named.items(), key=lambda item: item[1]):
        if label not in labels:
            raise PwrunError(missing_label(source, label, f"{workflow}:{line}", labels))
