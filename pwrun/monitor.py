"""`pwrun monitor`: Parsl's web view (parsl-visualize) of a run recorded with `--monitor`,
served on the workstation's loopback."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import typer

from pwrun import state
from pwrun.errors import InfrastructureError, PwrunError
from pwrun.parslcfg import check_monitoring, compat
from pwrun.process import Interrupts, wait_until
from pwrun.runstate import all_runs
from pwrun.transport.tunnel import free_loopback_port

ADDRESS = "127.0.0.1"
LOG = "monitor.log"  # parsl-visualize's output, in the run's directory
START_TIMEOUT = 60.0


def database(run_id: str | None) -> Path:
    """The monitoring database of run `run_id`, else of the latest run that has one."""
    runs = [r for r in all_runs() if run_id in (None, r.id)]
    if run_id and not runs:
        raise PwrunError(f"no run {run_id!r}")
    recorded = [db for r in runs if (db := r.directory / state.PARSL_DIR / compat.MONITORING_DB)
                .is_file()]  # fmt: skip
    if not recorded:
        which = f"run {run_id} was not" if run_id else "no run was"
        raise PwrunError(f"{which} recorded with monitoring: `pwrun run --monitor` first")
    return recorded[-1]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((ADDRESS, port)) == 0


def serve(run_id: str | None, port: int | None) -> None:
    """Serve the run's monitoring database until Ctrl-C (or SIGTERM), then stop the server."""
    db = database(run_id)
    check_monitoring()
    port = port or free_loopback_port()
    interrupts = Interrupts()
    interrupts.install()
    log_path = db.parent.parent / LOG
    with log_path.open("ab") as log:
        server = subprocess.Popen(
            compat.visualize_command(db, ADDRESS, port),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # stopped by pwrun, not by the terminal's Ctrl-C
        )  # fmt: skip
    try:
        wait_until(lambda: server.poll() is not None or listening(port), START_TIMEOUT)
        if server.poll() is not None or not listening(port):
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:]
            raise InfrastructureError(
                f"parsl-visualize did not serve {db} on {ADDRESS}:{port}"
                + (f": {tail[0]}" if tail else "") + f" (log: {log_path})"
            )  # fmt: skip
        typer.echo(f"http://{ADDRESS}:{port}/  (run {db.parent.parent.name}; Ctrl-C stops)")
        if server.wait() != 0:
            raise InfrastructureError(f"parsl-visualize ended with {server.returncode} "
                                      f"(log: {log_path})")  # fmt: skip
    finally:
        with interrupts.shielded():
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
