"""`pwrun jupyter SITE`: JupyterLab from the site's provisioned env, on its controller or in a
Slurm job, forwarded through ssh to the workstation's loopback; torn down on Ctrl-C.

The server, its token and its address live in a run directory on the site (recorded in
run.json as an executor), so teardown, and `pwrun down` after a kill -9, remove them as they
remove a run's: the forward is closed, the job cancelled, the directory removed, and the
server, which watches that directory, stops when it is gone.
"""

from __future__ import annotations

import json
import secrets
import shlex
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pwrun import state
from pwrun.cluster.pyenv import workstation_parsl
from pwrun.errors import InfrastructureError
from pwrun.process import Interrupts, ProcessRef, wait_until
from pwrun.provision.inventory import read_inventory
from pwrun.provision.ready import ready
from pwrun.run import site_target
from pwrun.runstate import ExecutorRecord, RunRecord, RunStatus
from pwrun.transport import tunnel
from pwrun.transport.ssh import SSHTarget

PACKAGE = "jupyterlab"
LABEL = "jupyter"
START_TIMEOUT = 300.0  # a queued job and a cold server start
# Runs on the site (bash: worker_init may `source`): $1 "loopback" (the controller) or "node"
# (a Slurm job's node), $2 its directory (Slurm runs a copy of the script from its spool);
# starts JupyterLab on a free port there, writes "ADDRESS PORT" to `address`, and stops the
# server once its directory is gone (teardown removed it).
SERVER = r"""#!/bin/bash
set -u
dir=$2
{worker_init}
if [ "$1" = node ]; then ip=$(hostname -I | awk '{{print $1}}'); else ip=127.0.0.1; fi
bind='import socket, sys; s = socket.socket(); s.bind((sys.argv[1], 0))'
port=$(python3 -c "$bind; print(s.getsockname()[1])" "$ip")
JUPYTER_TOKEN=$(cat "$dir/token"); export JUPYTER_TOKEN
jupyter lab --no-browser --ip="$ip" --port="$port" --ServerApp.port_retries=0 \
    --ServerApp.root_dir="$HOME" > "$dir/server.log" 2>&1 < /dev/null &
server=$!
echo "$ip $port" > "$dir/address.part" && mv "$dir/address.part" "$dir/address"
while [ -d "$dir" ] && kill -0 "$server" 2>/dev/null; do sleep 1; done
kill "$server" 2>/dev/null
wait
"""


def with_jupyter(hostvars: dict[str, Any]) -> dict[str, Any]:
    """The site's hostvars with JupyterLab added to its worker env's packages, in an env of its
    own: the run's env (without it) is not rebuilt back and forth."""
    packages = [*hostvars.get("python_env_packages", []), PACKAGE]
    path = f"~/.pwrun/envs/jupyter-parsl-{workstation_parsl()}"
    return {**hostvars, "python_env_packages": packages, "python_env_path": path}


def jupyter(
    site: str,
    inventory: Path,
    partition: str | None,
    local_port: int | None,
    serving: Callable[[str], None],
) -> None:
    """Serve JupyterLab from `site` (in a job on `partition`, else on its controller) at
    127.0.0.1:`local_port` (default: a free port) until Ctrl-C; `serving` gets its URL."""
    interrupts = Interrupts()
    interrupts.install()
    clusters = read_inventory(inventory)
    target = site_target(site, clusters.hosts, str(inventory))
    record = RunRecord(state.new_run_dir(), f"pwrun jupyter {site}")
    try:
        with record.stage(RunStatus.PROVISION):
            hostvars = with_jupyter(clusters.ansible_hosts[site])
            facts, _ = ready({site: hostvars}, {site: target}, record.directory)
        with record.stage(RunStatus.TUNNELS):
            home = target.run("echo $HOME").stdout.strip()
            remote_dir = f"{home}/.pwrun/runs/{record.id}/{LABEL}"
            executor = ExecutorRecord(LABEL, site, target, remote_dir, f"{record.id}-{LABEL}")
            record.add(executor)
            token = secrets.token_urlsafe(32)
            start(target, remote_dir, token, facts[site].get("pwrun_worker_init", ""), partition)
            address, port = wait_for_address(target, remote_dir)
            local = forward(executor.tunnel, target, local_port, address, port)
            url = f"http://127.0.0.1:{local.local_port}/lab?token={token}"
            wait_for_server(url, local, target, remote_dir)
        with record.stage(RunStatus.WORKFLOW):
            serving(url)
            while local.alive():
                time.sleep(0.5)
            raise InfrastructureError(f"{site}: the ssh forward to JupyterLab ended")
    finally:
        with interrupts.shielded():
            problems = record.teardown()
        if problems:
            raise InfrastructureError("teardown incomplete: " + "; ".join(problems))


def start(
    target: SSHTarget, remote_dir: str, token: str, worker_init: str, partition: str | None
) -> None:
    """Write the server script and its token (never on a command line) and start it: detached
    on the controller, or as a Slurm job whose script lies in `remote_dir` (so teardown's
    scancel finds it)."""
    target.write_file(f"{remote_dir}/token", token)
    script = f"{remote_dir}/jupyter.sh"
    target.write_file(script, SERVER.format(worker_init=worker_init), mode="700")
    quoted, where = shlex.quote(script), shlex.quote(remote_dir)
    if partition is None:
        # `( ... &)`: the shell that ssh runs ends at once; the server holds none of its fds
        detached = f"setsid {quoted} loopback {where} > /dev/null 2>&1 < /dev/null"
        target.run(f"cd {where} && ({detached} &)")
    else:
        target.run(
            f"cd {where} && sbatch --parsable --job-name=pwrun-jupyter --nodes=1 "
            f"--partition={shlex.quote(partition)} --output={where}/job.log {quoted} node {where}"
        )


def wait_for_address(target: SSHTarget, remote_dir: str) -> tuple[str, int]:
    """Where the server listens, once its script has said so."""
    path = shlex.quote(f"{remote_dir}/address")
    logs = " ".join(shlex.quote(f"{remote_dir}/{log}") for log in ("job.log", "server.log"))

    def address() -> str:
        return target.run(f"cat {path} 2>/dev/null; true").stdout.strip()

    answer = wait_until(address, START_TIMEOUT, interval=1.0)
    if not answer:
        tail = target.run(f"tail -n 3 {logs} 2>/dev/null; true").stdout.strip()
        raise InfrastructureError(
            f"{target.host}: JupyterLab did not start within {START_TIMEOUT:g}s"
            + (f": {' '.join(tail.split())[-300:]}" if tail else " (is the job still queued?)")
        )
    host, port = answer.split()
    return host, int(port)


def forward(
    name: str, target: SSHTarget, local_port: int | None, host: str, port: int
) -> tunnel.Tunnel:
    """`ssh -L` from workstation loopback to the server, recorded as a tunnel (so teardown and
    `pwrun down` close it)."""
    local_port = local_port or tunnel.free_loopback_port()
    log = tunnel.tunnels_dir() / f"{name}.log"
    argv = target.argv(
        "-N", "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=15",
        "-L", f"127.0.0.1:{local_port}:{host}:{port}", multiplex=False,
    )  # fmt: skip
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    opened = tunnel.Tunnel(name, target.host, local_port, host, port, ProcessRef.of(proc.pid),
                           str(log))  # fmt: skip
    state.write_atomic(tunnel.record_path(name), json.dumps(asdict(opened)))
    return opened


def wait_for_server(url: str, local: tunnel.Tunnel, target: SSHTarget, remote_dir: str) -> None:
    """Until JupyterLab answers through the forward (its API, with the token)."""
    token = url.partition("token=")[2]
    status = urllib.request.Request(
        f"http://127.0.0.1:{local.local_port}/api/status",
        headers={"Authorization": f"token {token}"},
    )

    def answers() -> bool:
        if not local.alive():
            raise InfrastructureError(
                f"{target.host}: the ssh forward failed: {Path(local.log).read_text().strip()}"
            )
        try:
            with urllib.request.urlopen(status, timeout=5) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    if not wait_until(answers, START_TIMEOUT, interval=0.5):
        log = shlex.quote(f"{remote_dir}/server.log")
        tail = target.run(f"tail -n 3 {log} 2>/dev/null; true").stdout
        raise InfrastructureError(
            f"{target.host}: JupyterLab does not answer: {' '.join(tail.split())[-300:]}"
        )
