"""`pwrun run`: load the run's Parsl configuration, run the user's workflow, clean up."""

from __future__ import annotations

import contextlib
import runpy
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from parsl import DataFlowKernel
from parsl.config import Config

from pwrun import state, validation
from pwrun.console import err, error
from pwrun.errors import InfrastructureError, PwrunError
from pwrun.parslcfg import compat, local_config
from pwrun.parslcfg.executors import LOCAL_SITE, ExecutorSpec, load_executors
from pwrun.parslcfg.render import SiteEndpoint, copy_certificates, make_certificates, render
from pwrun.process import Interrupts, ProcessRef
from pwrun.provision.runner import Inventory, is_on, provision, read_inventory
from pwrun.runstate import ExecutorRecord, RunRecord, RunStatus
from pwrun.transport import tunnel
from pwrun.transport.ssh import SSHTarget


@contextlib.contextmanager
def loaded(config: Config, interrupts: Interrupts) -> Iterator[DataFlowKernel]:
    """Load `config` for the workflow; a workflow's own `parsl.load(pwrun.config())` is a no-op."""
    with compat.loaded_once(config, shield=interrupts.shielded) as dfk:
        state.activate(config)
        try:
            yield dfk
        finally:
            state.activate(None)


def run_script(path: Path, args: list[str]) -> int:
    """Run a Python script as `__main__` and return what its exit status would be."""
    saved_argv, sys.argv = sys.argv, [str(path), *args]
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except Exception as exc:  # the workflow's own failure: show its traceback, it is user code
        traceback.print_exc()
        if label := compat.invalid_executor(exc):
            error(
                f"an app asked for executor {label!r}, which this run does not have (its labels: "
                f"{', '.join(compat.executor_labels())}): add it to the executors file"
            )
        return 1
    finally:
        sys.argv = saved_argv
    return 0


def run_workflow(workflow: Path, args: list[str]) -> int:
    """Run `workflow` on the embedded local site and return its exit code."""
    interrupts = Interrupts()
    interrupts.install()
    record = RunRecord(state.new_run_dir(), str(workflow))
    try:
        with loaded(local_config(record.directory), interrupts) as dfk:
            record_interchanges(record, dfk)
            with record.stage(RunStatus.WORKFLOW):
                return run_script(workflow, args)
    finally:
        with interrupts.shielded():
            record.teardown()


def record_interchanges(record: RunRecord, dfk: DataFlowKernel) -> None:
    """Record the run's local interchanges, so `pwrun down` can stop them after a kill -9."""
    record.interchanges = [ProcessRef.of(pid) for pid in compat.interchange_pids(dfk)]
    record.save()


def plan_sites(
    remote: dict[str, ExecutorSpec], hosts: dict[str, dict[str, Any]], executors_file: Path
) -> None:
    """Check that every cluster label's site exists in the inventory, is on and is reachable
    by valid ssh settings, before anything is made."""
    for label, spec in remote.items():
        where = f"{executors_file}: {label}.site"
        if spec.site not in hosts:
            known = ", ".join(sorted(hosts)) or "none"
            raise PwrunError(f"{where}: no cluster {spec.site!r} in the inventory (known: {known})")
        if not is_on(hosts[spec.site]):
            raise PwrunError(f"{where}: cluster {spec.site!r} is off; start it first")
        ssh_target(spec.site, hosts[spec.site])
        worker_address(spec.site, hosts[spec.site])


def run_on_sites(
    workflow: Path, args: list[str], executors_file: Path, inventory: Path | None
) -> int:
    """The whole run: inventory, provision, tunnels, workflow; teardown also on failure."""
    interrupts = Interrupts()
    interrupts.install()
    started = time.perf_counter()
    specs = load_executors(executors_file)
    remote = {label: spec for label, spec in specs.items() if spec.site != LOCAL_SITE}
    if not remote:
        clusters = Inventory.empty()
    elif inventory is None:
        raise PwrunError(f"{executors_file}: {next(iter(remote))}.site: clusters need -i INVENTORY")
    else:
        clusters = read_inventory(inventory)
    hosts = clusters.hosts
    plan_sites(remote, hosts, executors_file)
    record = RunRecord(state.new_run_dir(), str(workflow))
    record.timings["inventory"] = round(time.perf_counter() - started, 3)
    try:
        with record.stage(RunStatus.PROVISION):
            sites = {spec.site: clusters.ansible_hosts[spec.site] for spec in remote.values()}
            facts = provision(sites, record.directory) if sites else {}
        with record.stage(RunStatus.TUNNELS):
            endpoints = {
                label: connect(record, label, spec, hosts[spec.site], facts.get(spec.site, {}))
                for label, spec in remote.items()
            }
            cert_dir = make_certificates(record.directory)
            for endpoint in endpoints.values():
                copy_certificates(cert_dir, endpoint)
            config = render(specs, endpoints, record.directory, cert_dir)
            (record.directory / "config.txt").write_text(repr(config))
        with loaded(config, interrupts) as dfk:
            record_interchanges(record, dfk)
            with record.stage(RunStatus.WORKFLOW):
                code = run_script(workflow, args)
            record.teardown_started = time.perf_counter()  # Parsl's own cleanup counts too
        return code
    finally:
        with interrupts.shielded():
            problems = record.teardown()
        err.print(
            " · ".join(f"{name} {seconds:.1f}s" for name, seconds in record.timings.items())
            + f"  ({record.directory})",
            style="dim",
            highlight=False,
        )
        if problems:
            raise InfrastructureError("teardown incomplete: " + "; ".join(problems))


def ssh_target(site: str, hostvars: dict[str, Any]) -> SSHTarget:
    """How pwrun reaches a site's login node, from its Ansible connection variables."""
    try:
        return SSHTarget.from_ansible(
            hostvars["ansible_host"],
            hostvars.get("ansible_user"),
            hostvars.get("ansible_port"),
            hostvars.get("ansible_ssh_private_key_file"),
            hostvars.get("ansible_ssh_common_args", ""),
        )
    except KeyError:
        raise PwrunError(f"inventory host {site}: no ansible_host") from None
    except PwrunError as exc:
        raise PwrunError(f"inventory host {site}: {exc}") from None


def worker_address(site: str, hostvars: dict[str, Any]) -> str:
    """The login node's address as compute nodes reach it: an IP (Parsl's `-a` takes IPs)."""
    for field in ("pwrun_private_address", "ansible_host"):
        value = hostvars.get(field)
        if not value:
            continue
        try:
            return validation.ip_address(str(value))
        except ValueError:
            raise PwrunError(
                f"inventory host {site}: {field}: {value!r} is not an IP address; set "
                "pwrun_private_address to the login node's internal IP (what compute nodes reach)"
            ) from None
    raise PwrunError(f"inventory host {site}: no ansible_host")


def connect(
    record: RunRecord, label: str, spec: ExecutorSpec, hostvars: dict[str, Any], facts: dict
) -> SiteEndpoint:
    """Open one executor's tunnel and make its remote run directory, recording both first."""
    target = ssh_target(spec.site, hostvars)
    home = target.run("echo $HOME").stdout.strip()
    base = home + spec.run_dir[1:] if spec.run_dir.startswith("~") else spec.run_dir  # ~ or ~/
    address = worker_address(spec.site, hostvars)
    executor = ExecutorRecord(
        label, spec.site, target, f"{base}/{record.id}/{label}", f"{record.id}-{label}"
    )
    record.add(executor)
    opened, _ = tunnel.ensure(executor.tunnel, target, tunnel.free_loopback_port(), address)
    return SiteEndpoint(
        ssh=target,
        internal_address=address,
        local_port=opened.local_port,
        remote_port=opened.remote_port,
        remote_dir=executor.remote_dir,
        worker_init=facts.get("pwrun_worker_init", ""),
    )
