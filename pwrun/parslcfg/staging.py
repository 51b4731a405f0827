"""Tasks on a cluster label read and write workstation files: the executor moves them.

`MovesFiles.submit` gives each try of a task site paths for its `file` Files and bash_app
streams: inputs are sent to the site's store before the task goes out; outputs come back after
it succeeds, streams after it ends either way, all before the task's future resolves (so
output DataFutures resolve after their copy). `s3://` and `gs://` Files move the same way
through the run's ObjectCache: fetched on the workstation before they are sent, published from
it once they are back. A transfer that fails fails the task, naming the file, the site and the
cause.
"""

from __future__ import annotations

import itertools
import os
import posixpath
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from parsl.data_provider.data_manager import default_staging
from parsl.data_provider.files import File
from parsl.data_provider.staging import Staging
from parsl.executors import HighThroughputExecutor
from parsl.executors.base import ParslExecutor

from pwrun.console import warn
from pwrun.data.cache import ObjectCache, at_site, object_name
from pwrun.data.objects import is_object_url
from pwrun.errors import ObjectStoreError
from pwrun.parslcfg import compat
from pwrun.parslcfg.timeouts import TimesOut
from pwrun.transport.contents import TransferError, safe_name
from pwrun.transport.files import Fetch, SiteFiles

STREAMS = ("stdout", "stderr")
NOT_INPUTS = ("inputs", "outputs", *STREAMS)
T = TypeVar("T")


def is_local_file(value: object) -> bool:
    """A File on the workstation's filesystem (`file://` URL or plain path)."""
    return isinstance(value, File) and value.scheme == "file"


def is_object(value: object) -> bool:
    """An s3:// or gs:// File."""
    return isinstance(value, File) and is_object_url(value.url)


def is_moved(value: object) -> bool:
    """A File the executor moves: a workstation file or an object."""
    return is_local_file(value) or is_object(value)


def workstation_path(path: str) -> Path:
    """A workstation path as the workflow meant it: relative to its current directory."""
    return Path(os.path.abspath(path))


def source(file: File) -> str:
    """Where an input comes from: its object URL, or its absolute workstation path."""
    return file.url if is_object(file) else str(workstation_path(file.path))


class ObjectsMoved(Staging):
    """Parsl leaves s3:// and gs:// Files to the executor, as it does `file` ones."""

    def can_stage_in(self, file: File) -> bool:
        return is_object(file)

    def can_stage_out(self, file: File) -> bool:
        return is_object(file)


@dataclass
class TaskPlan:
    """One try's files: what to send, where the app sees them, what to bring back."""

    inputs: list[File]
    outputs: list[Fetch]  # after success
    streams: list[Fetch]  # always
    output_dirs: list[str]  # relative to the store: made before the task
    published: dict[Fetch, str] = field(default_factory=dict)  # object outputs: fetch -> URL
    site_paths: dict[int, str] = field(default_factory=dict)  # id(File) -> site path
    stream_specs: dict[str, Any] = field(default_factory=dict)  # stdout/stderr for the site

    @property
    def sources(self) -> list[str]:
        return list(dict.fromkeys(map(source, self.inputs)))

    def named(self, problem: BaseException) -> BaseException:
        """A failure to fetch outputs, object outputs named by their URLs (not their
        workstation temporary files)."""
        if not self.published or not isinstance(problem, TransferError):
            return problem
        message = str(problem)
        for fetch, url in self.published.items():
            message = message.replace(str(fetch.dest), url)
        return TransferError(message)

    def bind(
        self, args: Sequence[Any], kwargs: dict[str, Any], sent: Sequence[str]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The try's arguments, each File placed at its site path (`sent`: the sources')."""
        where = dict(zip(self.sources, sent, strict=True))
        site_paths = self.site_paths | {id(f): where[source(f)] for f in self.inputs}

        def place(value: Any) -> Any:
            if not isinstance(value, File) or id(value) not in site_paths:
                return value
            placed = value.cleancopy()
            placed.local_path = site_paths[id(value)]
            return placed

        placed_kwargs = {name: place(value) for name, value in kwargs.items()}
        for name in ("inputs", "outputs"):
            if name in kwargs:
                placed_kwargs[name] = [place(value) for value in kwargs[name]]
        return tuple(map(place, args)), placed_kwargs | self.stream_specs


def plan_task(
    func: Callable[..., Any],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    task_dir: str,
    store: str,
    outputs_dir: str,
    scratch: Path,
) -> TaskPlan:
    """What one try needs moved. `task_dir`: an absolute site directory for its streams;
    `outputs_dir`: one relative to the site's `store` for its outputs, and to the workstation
    directory `scratch` for its object outputs before they are published."""
    inputs = [v for v in args if is_moved(v)]
    inputs += [v for k, v in kwargs.items() if k not in NOT_INPUTS and is_moved(v)]
    inputs += [v for v in kwargs.get("inputs", ()) if is_moved(v)]
    plan = TaskPlan(inputs, [], [], [])
    for index, file in enumerate(kwargs.get("outputs", ())):
        if is_moved(file):
            directory = f"{outputs_dir}/{index}"
            plan.output_dirs.append(directory)
            if is_object(file):
                dest = scratch / directory / object_name(file.url)
            else:
                dest = workstation_path(file.path)
            plan.site_paths[id(file)] = f"{store}/{directory}/{safe_name(dest.name)}"
            plan.outputs.append(Fetch(plan.site_paths[id(file)], dest))
            if is_object(file):
                plan.published[plan.outputs[-1]] = file.url
    if compat.is_bash_app(func):
        for name in STREAMS:
            spec = kwargs.get(name)
            if spec is None or (isinstance(spec, File) and not is_local_file(spec)):
                continue
            path, mode = compat.std_stream(name, spec)
            dest = workstation_path(path)
            site_path = posixpath.join(task_dir, name, safe_name(dest.name))
            plan.streams.append(Fetch(site_path, dest, required=False, append="a" in mode))
            if isinstance(spec, File):
                plan.site_paths[id(spec)] = site_path
            else:
                plan.stream_specs[name] = (site_path, mode)
    return plan


class MovesFiles(ParslExecutor):
    """Mix in before a Parsl executor whose tasks run on a site: their files and streams move
    between the workstation and the site. Construct the executor as usual (its repr stays the
    executor's), then `attach` the site's files."""

    files: SiteFiles
    remote_dir: str
    objects: ObjectCache
    storage_access: list[Staging] | None

    def attach(self, files: SiteFiles, remote_dir: str, objects: ObjectCache) -> None:
        """Move files through `files` and objects through `objects`; streams go under
        `remote_dir` on the site."""
        self.files = files
        self.remote_dir = remote_dir
        self.objects = objects
        self.tries = itertools.count()
        self.submitting = threading.Lock()
        self.storage_access = [*(self.storage_access or default_staging), ObjectsMoved()]

    def shutdown(self, *args: Any, **kwargs: Any) -> None:
        """Shut the executor down, then remove the run's object cache."""
        super().shutdown(*args, **kwargs)
        self.objects.close()

    def submit_now(self, func: Callable[..., Any], spec: dict[str, Any], *args: Any,
                   **kwargs: Any) -> Future[Any]:  # fmt: skip
        with self.submitting:  # from the DFK's thread and the transfer threads
            return super().submit(func, spec, *args, **kwargs)  # type: ignore[safe-super]

    def submit(
        self, func: Callable[..., Any], resource_specification: dict[str, Any], *args: Any,
        **kwargs: Any,
    ) -> Future[Any]:  # fmt: skip
        n = next(self.tries)
        plan = plan_task(func, args, kwargs, f"{self.remote_dir}/tasks/{n}", self.files.store,
                         f"out/{safe_name(self.label)}/{n}", self.objects.directory)  # fmt: skip
        if not (plan.inputs or plan.outputs or plan.streams):
            return self.submit_now(func, resource_specification, *args, **kwargs)
        done: Future[Any] = Future()

        def launch(sent: Future[list[str]]) -> None:
            try:
                placed_args, placed_kwargs = plan.bind(args, kwargs, sent.result())
                running = self.submit_now(
                    func, resource_specification, *placed_args, **placed_kwargs
                )
            except Exception as exc:
                done.set_exception(exc)
                return
            running.add_done_callback(lambda ran: self.bring_back(plan, ran, done))

        def send(local: Future[list[Path]]) -> None:
            if local.exception() is not None:
                done.set_exception(self.about_objects(local.exception(), "input for"))
            else:
                self.files.put(local.result(), plan.output_dirs).add_done_callback(launch)

        if plan.inputs or plan.output_dirs:
            gather([
                self.objects.local(s) if is_object_url(s) else completed(Path(s))
                for s in plan.sources
            ]).add_done_callback(send)  # fmt: skip
        else:
            launch(completed([]))
        return done

    def about_objects(self, problem: BaseException | None, role: str) -> BaseException | None:
        """`problem`, naming this site if it is about an object."""
        if isinstance(problem, ObjectStoreError):
            return at_site(problem, role, self.files.site)
        return problem

    def bring_back(self, plan: TaskPlan, ran: Future[Any], done: Future[Any]) -> None:
        """Fetch the try's streams (and its outputs if it succeeded), publish its object
        outputs, then resolve `done`."""
        failed = ran.exception() is not None or compat.app_failed(ran.result())
        fetches = plan.streams + ([] if failed else plan.outputs)

        def resolve(fetched: Future[None]) -> None:
            problem = fetched.exception()
            if problem and not failed:
                done.set_exception(plan.named(problem))
                return
            if problem:  # the app's own failure is what the workflow must see
                warn(f"{self.label}: {problem}")
            if ran.exception():
                done.set_exception(ran.exception())
            elif failed:
                done.set_result(ran.result())
            else:
                gather([
                    self.objects.publish(fetch.dest, url) for fetch, url in plan.published.items()
                ]).add_done_callback(published)  # fmt: skip

        def published(publishing: Future[list[None]]) -> None:
            if publishing.exception() is not None:
                done.set_exception(self.about_objects(publishing.exception(), "output from"))
            else:
                done.set_result(ran.result())

        if fetches:
            self.files.get(fetches).add_done_callback(resolve)
        else:
            resolve(completed(None))


def completed(value: Any) -> Future[Any]:
    """A future already resolved with `value`."""
    future: Future[Any] = Future()
    future.set_result(value)
    return future


def gather(futures: list[Future[T]]) -> Future[list[T]]:
    """A future of the results of `futures` once all are done, or of the first exception among
    them (in their order)."""
    done: Future[list[T]] = Future()
    remaining = [len(futures)]
    counting = threading.Lock()

    def finish() -> None:
        problem = next((f.exception() for f in futures if f.exception() is not None), None)
        if problem is not None:
            done.set_exception(problem)
        else:
            done.set_result([f.result() for f in futures])

    def one(_: Future[T]) -> None:
        with counting:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            finish()

    if not futures:
        finish()
    for future in futures:
        future.add_done_callback(one)
    return done


class SiteExecutor(MovesFiles, TimesOut, HighThroughputExecutor):  # type: ignore[misc]
    """An HTEX whose tasks' files and streams move between the workstation and its site, and
    whose tasks' timeouts are enforced there."""
