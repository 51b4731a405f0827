"""Requests made meanwhile, handled together: one round trip for many."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

BATCH_LIMIT = 1000  # requests per round trip
T = TypeVar("T")
R = TypeVar("R")


class Batches(Generic[T, R]):
    """Requests made meanwhile, handled together in one thread; each gets its own Future."""

    def __init__(self, name: str, handle: Callable[[list[tuple[T, Future[R]]]], None]) -> None:
        self.name = name
        self.handle = handle
        self.pending: queue.SimpleQueue[tuple[T, Future[R]]] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.starting = threading.Lock()

    def submit(self, request: T) -> Future[R]:
        future: Future[R] = Future()
        self.pending.put((request, future))
        with self.starting:
            if self.thread is None:
                self.thread = threading.Thread(target=self.loop, name=self.name, daemon=True)
                self.thread.start()
        return future

    def loop(self) -> None:
        while True:
            batch = [self.pending.get()]
            with contextlib.suppress(queue.Empty):
                while len(batch) < BATCH_LIMIT:
                    batch.append(self.pending.get_nowait())
            try:
                self.handle(batch)
            except Exception as exc:  # a bug must not leave futures waiting forever
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
