"""`pwrun run`: load the run's Parsl configuration, run the user's workflow, clean up."""

from __future__ import annotations

import contextlib
import dataclasses
import runpy
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from parsl import DataFlowKernel
from parsl.config import Config

from pwrun import state
from pwrun.console import err, error
from pwrun.errors import InfrastructureError, PwrunError
from pwrun.inventory.pw.lifecycle import show_progress, start_and_wait
from pwrun.parslcfg import LOCAL_LABEL, compat, local_config
from pwrun.parslcfg.executors import (
    ClusterSpec,
    ExecutorSpec,
    PbsSpec,
    by_scheduler,
    default_provider,
    load_executors,
)
from pwrun.parslcfg.render import SiteEndpoint, copy_certificates, make_certificates, render
from pwrun.parslcfg.workflow import check_labels, merge, summary
from pwrun.process import Interrupts, ProcessRef
from pwrun.provision.inventory import (
    Inventory,
    is_on,
    read_inventory,
    ssh_target,
    worker_address,
)
from pwrun.provision.ready import ready
from pwrun.runstate import ExecutorRecord, RunRecord, RunStatus
from pwrun.transport import tunnel
from pwrun.transport.ssh import SSHTarget, expand_home


@contextlib.contextmanager
def loaded(
    config: Config,
    fresh: Callable[[], Config],
    source: str,
    record: RunRecord,
    interrupts: Interrupts,
) -> Iterator[list[DataFlowKernel]]:
    """Serve the workflow's loads: `parsl.load(pwrun.config())`, `parsl.load()` or its first app
    load `config`; its own `parsl.load(cfg)` loads `config` merged into `cfg` (pwrun.parslcfg.
    workflow). A load after the workflow cleaned up its DFK gets `fresh()` executors: a shut-down
    executor does not start again. Yields the DFKs loaded; pwrun cleans up those still loaded."""
    unused = [config]

    def build(given: Config | None) -> Config:
        ours = unused.pop() if unused else fresh()
        if given is None:
            return ours
        merged = merge(given, ours, source)
        err.print(summary(given, merged, source), highlight=False, markup=False)
        return merged

    def started(dfk: DataFlowKernel) -> None:
        """Record the DFK's interchanges, so `pwrun down` can stop them after a kill -9."""
        record.interchanges += [ProcessRef.of(pid) for pid in compat.interchange_pids(dfk)]
        record.save()

    state.activate(config)
    try:
        with compat.loads_on_demand(config, build, started, interrupts.shielded) as dfks:
            yield dfks
    finally:
        state.activate(None)


def run_script(path: Path, args: list[str], dfks: list[DataFlowKernel]) -> int:
    """Run a Python script as `__main__` and return what its exit status would be."""
    saved_argv, sys.argv = sys.argv, [str(path), *args]
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except PwrunError:  # pwrun's refusal (a label the run lacks): one line, not the workflow's
        raise
    except Exception as exc:  # the workflow's own failure: show its traceback, it is user code
        traceback.print_exc()
        if dfks and (label := compat.invalid_executor(exc)):
            error(
                f"an app asked for executor {label!r}, which this run does not have (its labels: "
                f"{', '.join(compat.executor_labels(dfks[-1]))}): add it to the executors file"
            )
        return 1
    finally:
        sys.argv = saved_argv
    return 0


def run_workflow(workflow: Path, args: list[str]) -> int:
    """Run `workflow` on the embedded local site and return its exit code."""
    source = "the embedded local site (no -e EXECUTORS)"
    check_labels(workflow, [LOCAL_LABEL], source)
    interrupts = Interrupts()
    interrupts.install()
    record = RunRecord(state.new_run_dir(), str(workflow))

    def fresh() -> Config:
        return local_config(record.directory)

    try:
        with (
            loaded(fresh(), fresh, source, record, interrupts) as dfks,
            record.stage(RunStatus.WORKFLOW),
        ):
            return run_script(workflow, args, dfks)
    finally:
        with interrupts.shielded():
            record.teardown()


def plan_sites(
    remote: Mapping[str, ClusterSpec], hosts: dict[str, dict[str, Any]], source: str
) -> dict[str, SSHTarget]:
    """Check that every cluster label's site exists in the inventory, is on and is reachable
    by valid ssh settings, before anything is made; how pwrun reaches each site."""
    targets: dict[str, SSHTarget] = {}
    for label, spec in remote.items():
        target = site_target(spec.site, hosts, f"{source}: {label}.site")
        targets.setdefault(spec.site, target)
        worker_address(spec.site, hosts[spec.site])
    return targets


def site_target(site: str, hosts: dict[str, dict[str, Any]], where: str) -> SSHTarget:
    """How pwrun reaches cluster `site` of the inventory; refused, naming `where`, when the
    inventory lacks it, it is off, or its ssh settings are not valid."""
    if site not in hosts:
        known = ", ".join(sorted(hosts)) or "none"
        raise PwrunError(f"{where}: no cluster {site!r} in the inventory (known: {known})")
    if not is_on(hosts[site]):
        raise PwrunError(f"{where}: cluster {site!r} is off; start it first")
    return ssh_target(site, hosts[site])


@dataclasses.dataclass(frozen=True)
class Start:
    """`pwrun run --start`: start the run's PW clusters that are off, waiting up to `timeout`
    seconds for them."""

    timeout: float = 1800.0


def clusters_to_start(
    remote: Mapping[str, ClusterSpec], hosts: dict[str, dict[str, Any]], source: str
) -> list[str]:
    """The sites of `remote` that are off (and known): each must be a PW cluster."""
    off = []
    for label, spec in remote.items():
        facts = hosts.get(spec.site)
        if facts is None or is_on(facts) or spec.site in off:
            continue
        if facts.get("pwrun_source") != "pw":
            raise PwrunError(
                f"{source}: {label}.site: cluster {spec.site!r} is off, and --start starts PW "
                "clusters only"
            )
        off.append(spec.site)
    return off


@dataclasses.dataclass(frozen=True)
class Stages:
    """A run whose sites are ready: its record, and the DFKs its loads made so far."""

    record: RunRecord
    dfks: list[DataFlowKernel]


@contextlib.contextmanager
def on_sites(
    specs: dict[str, ExecutorSpec],
    source: str,
    inventory: Path | None,
    workflow: str,
    interrupts: Interrupts,
    start: Start | None = None,
) -> Iterator[Stages]:
    """The stages of a run on these executors (`source` names them in errors): inventory,
    (with `start`: the PW clusters that are off started, and the inventory read again),
    provision, tunnels, then the loads (pwrun.run.loaded) while open; teardown on exit, also
    after a failure or KeyboardInterrupt, stops the clusters it started. `pwrun run` and
    pwrun.session() both run these."""
    started = time.perf_counter()
    remote = {label: spec for label, spec in specs.items() if isinstance(spec, ClusterSpec)}
    if not remote:
        clusters = Inventory.empty()
    elif inventory is None:
        label = next(iter(remote))
        raise PwrunError(f"{source}: {label}.site: clusters need an inventory (-i INVENTORY)")
    else:
        clusters = read_inventory(inventory)
    hosts = clusters.hosts
    off = clusters_to_start(remote, hosts, source) if start else []
    targets = plan_sites({k: v for k, v in remote.items() if v.site not in off}, hosts, source)
    record = RunRecord(state.new_run_dir(), workflow)
    record.timings["inventory"] = round(time.perf_counter() - started, 3)
    try:
        if start and off and inventory is not None:
            with record.stage(RunStatus.CLUSTERS):
                start_and_wait(inventory, off, start.timeout, record.add_started, show_progress)
                clusters = read_inventory(inventory, flush_cache=True)  # now with addresses
                hosts = clusters.hosts
                targets = plan_sites(remote, hosts, source)
        cert_dir = make_certificates(record.directory)
        sites = {site: clusters.ansible_hosts[site] for site in targets}
        with ThreadPoolExecutor(len(remote) or 1, thread_name_prefix="pwrun-connect") as pool:
            with record.stage(RunStatus.PROVISION):  # tunnels need no provisioning: they open now
                opening = {
                    label: pool.submit(
                        connect, record, label, spec, targets[spec.site], hosts[spec.site], cert_dir
                    )
                    for label, spec in remote.items()
                }
                facts, _ = ready(sites, targets, record.directory) if sites else ({}, [])
            with record.stage(RunStatus.TUNNELS):
                endpoints = {
                    label: dataclasses.replace(
                        future.result(),
                        worker_init=facts[remote[label].site].get("pwrun_worker_init", ""),
                    )
                    for label, future in opening.items()
                }
        specs = schedulers_chosen(specs, source, hosts, facts, record)  # every executor recorded

        def fresh() -> Config:
            return render(specs, endpoints, record.directory, cert_dir)

        config = fresh()
        (record.directory / state.RENDERED_CONFIG).write_text(repr(config))
        with loaded(config, fresh, source, record, interrupts) as dfks:
            try:
                yield Stages(record, dfks)
            finally:
                record.teardown_started = time.perf_counter()  # Parsl's own cleanup counts too
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


def run_on_sites(
    workflow: Path,
    args: list[str],
    executors_file: Path,
    inventory: Path | None,
    start: Start | None = None,
) -> int:
    """The whole run: the stages (on_sites) around the workflow, under pwrun's own signal
    handling."""
    interrupts = Interrupts()
    interrupts.install()
    specs = load_executors(executors_file)
    check_labels(workflow, specs, str(executors_file))
    with (
        on_sites(specs, str(executors_file), inventory, str(workflow), interrupts, start) as run,
        run.record.stage(RunStatus.WORKFLOW),
    ):
        return run_script(workflow, args, run.dfks)


def schedulers_chosen(
    specs: dict[str, ExecutorSpec],
    source: str,
    hosts: dict[str, dict[str, Any]],
    facts: dict[str, dict[str, Any]],
    record: RunRecord,
) -> dict[str, ExecutorSpec]:
    """The executors as their sites' schedulers (the facts, else the inventory's) call for,
    before any job is submitted; each executor's record says which, for teardown."""
    providers = {site: default_provider({**hosts[site], **facts[site]}) for site in facts}
    specs = by_scheduler(specs, providers, source)
    for executor in record.executors:
        executor.scheduler = "pbs" if isinstance(specs[executor.label], PbsSpec) else "slurm"
    record.save()
    return specs


def connect(
    record: RunRecord,
    label: str,
    spec: ClusterSpec,
    target: SSHTarget,
    hostvars: dict[str, Any],
    cert_dir: Path,
) -> SiteEndpoint:
    """Open one executor's tunnel and give its remote run directory the run's worker keys,
    recording both before they exist. Executors connect at once, one thread each, while their
    sites are provisioned (the endpoint's worker_init comes from that, afterwards)."""
    home = target.run("echo $HOME").stdout.strip()
    base = expand_home(spec.run_dir, home)
    address = worker_address(spec.site, hostvars)
    executor = ExecutorRecord(
        label, spec.site, target, f"{base}/{record.id}/{label}", f"{record.id}-{label}"
    )
    record.add(executor)
    opened, _ = tunnel.ensure(executor.tunnel, target, tunnel.free_loopback_port(), address)
    endpoint = SiteEndpoint(
        site=spec.site,
        ssh=target,
        internal_address=address,
        local_port=opened.local_port,
        remote_port=opened.remote_port,
        remote_dir=executor.remote_dir,
        worker_init="",
    )
    copy_certificates(cert_dir, endpoint)
    return endpoint
