"""What `pwrun run --report FILE --junit FILE` writes when a run ends, however it ends: a JSON
summary (exit code, stage timings, tasks per label and per app function) and a JUnit XML file
(one test case per app function) for CI dashboards."""

from __future__ import annotations

import dataclasses
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pwrun import state
from pwrun.errors import PwrunError
from pwrun.process import INTERRUPTED
from pwrun.progress import Watch

WORKFLOW_CASE = "workflow"  # the JUnit test case of the run's own outcome (its exit code)
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # not allowed in XML 1.0


def output_path(path: Path, option: str) -> Path:
    """`path` made absolute now (a workflow may change directory), its directory checked."""
    path = path.absolute()
    if not path.parent.is_dir():
        raise PwrunError(f"{option} {path}: no directory {path.parent}")
    return path


@dataclasses.dataclass
class Reports:
    """The files a run writes when it ends."""

    workflow: Path
    report: Path | None = None
    junit: Path | None = None
    watch: Watch = dataclasses.field(default_factory=Watch)
    started: datetime = dataclasses.field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        self.report = self.report and output_path(self.report, "--report")
        self.junit = self.junit and output_path(self.junit, "--junit")

    def written(self, run: Callable[[], int]) -> int:
        """`run()`'s exit code, with the reports written once it returns or raises: a PwrunError
        is its exit code, Ctrl-C 130, anything else 1."""
        try:
            code = run()
        except PwrunError as exc:
            self.write(exc.exit_code, str(exc))
            raise
        except KeyboardInterrupt:
            self.write(INTERRUPTED, "interrupted")
            raise
        except BaseException as exc:
            self.write(1, f"{type(exc).__name__}: {exc}")
            raise
        self.write(code, None)
        return code

    def write(self, exit_code: int, error: str | None) -> None:
        ended = datetime.now(UTC)
        if self.report:
            state.write_atomic(self.report, json.dumps(self.summary(exit_code, error, ended),
                                                       indent=1) + "\n", mode=0o644)  # fmt: skip
        if self.junit:
            tree = ET.ElementTree(self.junit_xml(exit_code, error, ended))
            ET.indent(tree)
            with state.replacing(self.junit, mode=0o644) as out:
                tree.write(out, encoding="utf-8", xml_declaration=True)

    def summary(self, exit_code: int, error: str | None, ended: datetime) -> dict[str, Any]:
        record, tracker = self.watch.record, self.watch.tracker
        counts = tracker.counts(activity=False)
        return {
            "run_id": record.id if record else None,
            "workflow": str(self.workflow),
            "exit_code": exit_code,
            "error": error,
            "status": record.status.value if record else None,
            "started": self.started.isoformat(),
            "ended": ended.isoformat(),
            "seconds": round((ended - self.started).total_seconds(), 3),
            "timings": dict(record.timings) if record else {},
            "labels": {
                label: {key: row[key] for key in ("done", "failed", "retried")}
                for label, row in counts.items()
            },
            "apps": {
                name: {
                    "tasks": app.tasks,
                    "failed": app.failed,
                    "retried": app.retried,
                    "seconds": round(app.seconds, 3),
                    "labels": sorted(app.labels),
                }
                for name, app in sorted(tracker.apps.items())
            },
            "run_dir": str(record.directory) if record else None,
        }

    def junit_xml(self, exit_code: int, error: str | None, ended: datetime) -> ET.Element:
        """One test suite, named after the workflow: a test case per app function (failed when
        any of its tasks failed, with their messages), and one for the run's exit code."""
        apps = sorted(self.watch.tracker.apps.items())
        name = self.workflow.name
        failures = sum(app.failed > 0 for _, app in apps) + (exit_code != 0)
        seconds = f"{(ended - self.started).total_seconds():.3f}"
        counts = {"tests": str(len(apps) + 1), "failures": str(failures), "errors": "0",
                  "skipped": "0", "time": seconds}  # fmt: skip
        suites = ET.Element("testsuites", {"name": "pwrun", **counts})
        suite = ET.SubElement(
            suites, "testsuite", {"name": name, "timestamp": self.started.isoformat(), **counts}
        )
        for app_name, app in apps:
            case = ET.SubElement(suite, "testcase", classname=name, name=app_name,
                                 time=f"{app.seconds:.3f}")  # fmt: skip
            if app.failed:
                message = f"{app.failed} of {app.tasks} tasks failed; first: {app.failures[0]}"
                failure = ET.SubElement(
                    case, "failure", message=xml_text(message), type="TaskFailed"
                )
                more = app.failed - len(app.failures)
                failure.text = xml_text(
                    "\n".join(app.failures + ([f"... and {more} more"] if more else []))
                )
            ET.SubElement(
                case, "system-out"
            ).text = f"{app.tasks} tasks on {', '.join(sorted(app.labels))}; {app.retried} retried"
        case = ET.SubElement(suite, "testcase", classname=name, name=WORKFLOW_CASE, time=seconds)
        if exit_code != 0:
            message = f"exit code {exit_code}" + (f": {error}" if error else "")
            ET.SubElement(
                case, "failure", message=xml_text(message), type="ExitCode"
            ).text = xml_text(message)
        return suites


def xml_text(text: str) -> str:
    """`text` with the characters XML 1.0 cannot hold (control characters) as U+FFFD."""
    return NOT_XML.sub("\ufffd", text)
