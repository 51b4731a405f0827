"""Tunnel supervision while a run is live: a tunnel whose ssh ends (killed, or given up by its
keepalives when the site stops answering) is re-opened on the same ports within seconds, so the
workers' connections (ZMQ reconnects by itself) resume and tasks in flight finish. A site whose
tunnel cannot be re-opened `attempts` times within `window` seconds is declared lost: `on_lost`
gets the site's name and why, once per site, and its tunnels are no longer watched.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from pwrun.console import warn
from pwrun.errors import InfrastructureError
from pwrun.transport import tunnel
from pwrun.transport.ssh import SSHTarget, last_line

INTERVAL = 0.2  # seconds between checks of a tunnel's ssh
WINDOW = 60.0  # failed re-opens are counted over this many seconds...
ATTEMPTS = 3  # ...and this many of them lose the site
BACKOFF = 1.0  # seconds after a failed re-open before the next


class TunnelState(StrEnum):
    """A tunnel's state, as run.json records it and `pwrun status` shows it."""

    OPEN = "open"
    RECONNECTING = "reconnecting"
    LOST = "lost"  # its site was declared lost: no longer re-opened
    CLOSED = "closed"


@dataclass
class Watched:
    """One executor's tunnel under watch, and its failed re-opens (monotonic times)."""

    label: str
    site: str
    tunnel: tunnel.Tunnel
    target: SSHTarget
    reconnects: int = 0
    failures: list[float] = field(default_factory=list)


Changed = Callable[[str, TunnelState, int], None]  # label, state, reconnects so far
Lost = Callable[[str, str], None]  # site, why


class Supervisor:
    """Watches tunnels, one thread each, from `start()` until `stop()`."""

    def __init__(
        self,
        on_change: Changed,
        on_lost: Lost,
        reopen: Callable[[tunnel.Tunnel, SSHTarget], tunnel.Tunnel] = tunnel.reopen,
        interval: float = INTERVAL,
        window: float = WINDOW,
        attempts: int = ATTEMPTS,
        backoff: float = BACKOFF,
    ) -> None:
        self.on_change, self.on_lost, self.reopen = on_change, on_lost, reopen
        self.interval, self.window, self.attempts = interval, window, attempts
        self.backoff = backoff
        self.watched: list[Watched] = []
        self.lost: dict[str, str] = {}  # site: why
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def watch(self, label: str, site: str, opened: tunnel.Tunnel, target: SSHTarget) -> None:
        self.watched.append(Watched(label, site, opened, target))

    def start(self) -> None:
        for watched in self.watched:
            thread = threading.Thread(  # daemon: interpreter exit must not wait for it
                target=self._supervise,  # before the atexit teardown that stops it
                args=(watched,),
                name=f"pwrun-tunnel-{watched.label}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop watching; returns once no re-open is under way (each is bounded by ssh's
        timeouts), so nothing opens after teardown began."""
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _supervise(self, watched: Watched) -> None:
        while not self._stop.wait(self.interval):
            if watched.site in self.lost:
                return
            if not watched.tunnel.alive() and not self._recover(watched):
                return

    def _recover(self, watched: Watched) -> bool:
        """Re-open a tunnel whose ssh ended; False once its site is lost (or stopping)."""
        old = watched.tunnel
        why = last_line(_read(old.log))  # ssh's own reason, if it gave one
        why = "its ssh exited" if why == tunnel.LISTENING else why
        warn(
            f"{watched.site}: tunnel of {watched.label} ended ({why}); "
            f"re-opening it on port {old.remote_port}"
        )
        self.on_change(watched.label, TunnelState.RECONNECTING, watched.reconnects)
        while not self._stop.is_set():
            try:
                watched.tunnel = self.reopen(old, watched.target)
            except InfrastructureError as exc:
                if self._stop.is_set():
                    return False  # the run is ending: its teardown, not a lost site, follows
                now = time.monotonic()
                watched.failures = [t for t in watched.failures if t > now - self.window]
                watched.failures.append(now)
                if len(watched.failures) >= self.attempts:
                    count = len(watched.failures)
                    why = f"{count} re-opens of its tunnel failed within {self.window:g}s: {exc}"
                    self._declare_lost(watched, why)
                    return False
                warn(f"{watched.site}: re-opening the tunnel of {watched.label} failed: {exc}")
                self._stop.wait(self.backoff)
                continue
            watched.reconnects += 1
            self.on_change(watched.label, TunnelState.OPEN, watched.reconnects)
            warn(
                f"{watched.site}: tunnel of {watched.label} re-opened on port "
                f"{watched.tunnel.remote_port} (reconnect {watched.reconnects})"
            )
            return True
        return False

    def _declare_lost(self, watched: Watched, why: str) -> None:
        self.on_change(watched.label, TunnelState.LOST, watched.reconnects)
        with self._lock:
            if watched.site in self.lost:
                return
            self.lost[watched.site] = why
        warn(f"{watched.site}: site lost: {why}")
        self.on_lost(watched.site, why)


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""
