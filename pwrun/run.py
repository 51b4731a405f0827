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
from pwrun.checkpoints import checkpoints
from pwrun.console import err, error, warn
from pwrun.errors import InfrastructureError, PwrunError
from pwrun.parslcfg import LOCAL_LABEL, compat, local_config
from pwrun.parslcfg.executors import (
    ClusterSpec,
    ExecutorSpec,
    PbsSpec,
    by_scheduler,
    default_provider,
    load_executors_file,
)
from pwrun.parslcfg.failover import Routing
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
from pwrun.provision.ready import each, ready
from pwrun.runstate import ExecutorRecord, RunRecord, RunStatus
from pwrun.transport import tunnel
from pwrun.transport.ssh import SSHTarget, expand_home

START_TIMEOUT = 15.0  # seconds a site may take to answer its first ssh command


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


def new_record(workflow: str, resume: RunRecord | None) -> tuple[RunRecord, list[str]]:
    """A new run's record, and the checkpoints it reuses (those of `resume`, if given)."""
    record = RunRecord(state.new_run_dir(), workflow, resumed_from=resume.id if resume else None)
    if resume is None:
        return record, []
    found = checkpoints(resume)
    err.print(f"pwrun: resuming run {resume.id} ({len(found)} checkpoint file(s))", highlight=False)
    return record, found


def run_workflow(
    workflow: Path, args: list[str], retries: int | None = None, resume: RunRecord | None = None
) -> int:
    """Run `workflow` on the embedded local site and return its exit code; `retries`
    overrides the workflow's, `resume` is a run whose finished tasks are not run again."""
    source = "the embedded local site (no -e EXECUTORS)"
    check_labels(workflow, [LOCAL_LABEL], source)
    interrupts = Interrupts()
    interrupts.install()
    record, resumed = new_record(str(workflow.resolve()), resume)
    routing = Routing(retries=retries)

    def fresh() -> Config:
        return local_config(record.directory, routing, resumed)

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


def reach(
    targets: dict[str, SSHTarget], remote: Mapping[str, ClusterSpec], routing: Routing
) -> dict[str, str]:
    """Each site's home directory, asked of all at once. A site that does not answer within
    START_TIMEOUT is lost (its labels' tasks go to their fallbacks) if each label on it has a
    fallback; otherwise the run stops here (exit 3) naming it."""
    homes: dict[str, str] = {}
    for site, answer in each(targets, lambda site: home(targets[site])).items():
        if isinstance(answer, str):
            homes[site] = answer
            continue
        stranded = [
            label for label, spec in remote.items() if spec.site == site and not spec.fallback
        ]
        if stranded:
            for target in targets.values():
                target.close()
            raise InfrastructureError(
                f"site {site} is unreachable ({answer}) and label {stranded[0]} on it has no "
                "fallback"
            )
        routing.site_lost(site, f"unreachable at start ({answer})")
    return homes


def home(target: SSHTarget) -> str | InfrastructureError:
    """The login node's home directory, or why ssh could not tell."""
    try:
        return target.run("echo $HOME", timeout=START_TIMEOUT).stdout.strip()
    except InfrastructureError as exc:
        return exc


@dataclasses.dataclass(frozen=True)
class Stages:
    """A run whose sites are ready: its record, the DFKs its loads made so far, and its
    routing (`routing.site_lost(site, reason)` gives up on a site: its tasks fail over)."""

    record: RunRecord
    dfks: list[DataFlowKernel]
    routing: Routing


@contextlib.contextmanager
def on_sites(
    specs: dict[str, ExecutorSpec],
    source: str,
    inventory: Path | None,
    workflow: str,
    interrupts: Interrupts,
    retries: int | None = None,
    resume: RunRecord | None = None,
) -> Iterator[Stages]:
    """The stages of a run on these executors (`source` names them in errors): inventory,
    provision, tunnels, then the loads (pwrun.run.loaded) while open; teardown on exit, also
    after a failure or KeyboardInterrupt. `pwrun run` and pwrun.session() both run these.
    `retries` (None: the workflow's) and ranked failover apply to every task; `resume` is a run
    whose checkpointed tasks are not run again."""
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
    targets = plan_sites(remote, hosts, source)
    routing = Routing(
        {label: spec.fallback for label, spec in specs.items()},
        {label: (spec.site, targets.get(spec.site)) for label, spec in specs.items()},
        retries,
    )
    homes = reach(targets, remote, routing)
    remote = {label: spec for label, spec in remote.items() if spec.site in homes}
    targets = {site: target for site, target in targets.items() if site in homes}
    record, resumed = new_record(workflow, resume)
    record.timings["inventory"] = round(time.perf_counter() - started, 3)
    try:
        cert_dir = make_certificates(record.directory)
        sites = {site: clusters.ansible_hosts[site] for site in targets}
        with ThreadPoolExecutor(len(remote) or 1, thread_name_prefix="pwrun-connect") as pool:
            with record.stage(RunStatus.PROVISION):  # tunnels need no provisioning: they open now
                opening = {
                    label: pool.submit(
                        connect,
                        record,
                        label,
                        spec,
                        targets[spec.site],
                        hosts[spec.site],
                        cert_dir,
                        homes[spec.site],
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
            return render(specs, endpoints, record.directory, cert_dir, routing, resumed)

        config = fresh()
        (record.directory / state.RENDERED_CONFIG).write_text(repr(config))
        with loaded(config, fresh, source, record, interrupts) as dfks:
            try:
                yield Stages(record, dfks, routing)
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
        lost = routing.lost_labels()
        for problem in [p for p in problems if p.partition(":")[0] in lost]:
            problems.remove(problem)  # the run went on without that site: it is not this run's end
            warn(f"teardown incomplete on a lost site: {problem}; `pwrun down` once it is back")
        if problems:
            raise InfrastructureError("teardown incomplete: " + "; ".join(problems))


def run_on_sites(
    workflow: Path,
    args: list[str],
    executors_file: Path,
    inventory: Path | None,
    retries: int | None = None,
    resume: RunRecord | None = None,
) -> int:
    """The whole run: the stages (on_sites) around the workflow, under pwrun's own signal
    handling. `retries` wins over the executors file's; `resume`: see on_sites."""
    interrupts = Interrupts()
    interrupts.install()
    loaded_file = load_executors_file(executors_file)
    specs = loaded_file.labels
    check_labels(workflow, specs, str(executors_file))
    retries = loaded_file.run.retries if retries is None else retries
    with (
        on_sites(
            specs,
            str(executors_file),
            inventory,
            str(workflow.resolve()),
            interrupts,
            retries,
            resume,
        ) as run,
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
    home: str,
) -> SiteEndpoint:
    """Open one executor's tunnel and give its remote run directory the run's worker keys,
    recording both before they exist. Executors connect at once, one thread each, while their
    sites are provisioned (the endpoint's worker_init comes from that, afterwards)."""
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
