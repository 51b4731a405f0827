"""pwrun.session(): the stages of `pwrun run` around a notebook's or a program's own code."""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import parsl
from parsl import DataFlowKernel

from pwrun.errors import PwrunError
from pwrun.parslcfg.executors import executors_file, load_executors_file
from pwrun.process import Interrupts, hosted
from pwrun.run import on_sites
from pwrun.runstate import RunStatus

Executors = str | os.PathLike[str] | Mapping[str, Any]
DICT_SOURCE = "pwrun.session(executors)"  # how errors name executors given as a mapping


class Session:
    """`with pwrun.session(executors, inventory) as dfk:` runs what `pwrun run` runs before and
    after a workflow (inventory, provision, tunnels, load; teardown), around the block.

    `retries` wins over the executors' `pwrun: {retries: N}`, as `pwrun run --retries` does.
    The block's apps run on the executors' labels through `dfk` (also `parsl.dfk()`, and a
    `parsl.load(config)` of the block merges as under `pwrun run`). Everything is torn down
    when the block ends, also on an exception or KeyboardInterrupt, and at interpreter exit
    when it never ends (a notebook left open: the kernel's shutdown). No signal handler is
    installed: the host (a Jupyter kernel, a program) owns its signals.
    """

    def __init__(
        self,
        executors: Executors,
        inventory: str | os.PathLike[str] | None = None,
        retries: int | None = None,
    ):
        if isinstance(executors, Mapping):
            self.source = DICT_SOURCE
            loaded = executors_file(dict(executors), self.source)
        else:
            self.source = os.fspath(executors)
            loaded = load_executors_file(Path(executors))
        self.specs = loaded.labels
        self.retries = loaded.retries(retries)
        self.inventory = None if inventory is None else Path(inventory)
        self._open: contextlib.ExitStack | None = None

    def __enter__(self) -> DataFlowKernel:
        if self._open is not None:
            raise PwrunError(f"{self.source}: this session is open already")
        with contextlib.ExitStack() as stack:
            stack.enter_context(hosted())
            stages = on_sites(
                self.specs,
                self.source,
                self.inventory,
                "pwrun.session()",
                Interrupts(),
                self.retries,
            )
            run = stack.enter_context(stages)
            stack.enter_context(run.record.stage(RunStatus.WORKFLOW))
            dfk = parsl.dfk()  # pwrun's loader while open: the run's config, loaded now
            self._open = stack.pop_all()
        atexit.register(self.close)
        return dfk

    def __exit__(self, *exc_info: Any) -> None:
        self._close(exc_info)

    def close(self) -> None:
        """Tear the session down now (nothing if it is closed)."""
        self._close((None, None, None))

    def _close(self, exc_info: tuple[Any, Any, Any]) -> None:
        atexit.unregister(self.close)
        opened, self._open = self._open, None
        if opened is not None:
            opened.__exit__(*exc_info)
