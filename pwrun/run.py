"""`pwrun run`: load the run's Parsl configuration, run the user's workflow, clean up."""

from __future__ import annotations

import contextlib
import dataclasses
import runpy
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from parsl import DataFlowKernel
from parsl.config import Config
from parsl.monitoring import MonitoringHub

from pwrun import state
from pwrun.checkpoints import checkpoints
from pwrun.console import err, error, warn
from pwrun.errors import InfrastructureError, PwrunError
from pwrun.inventory.pw.lifecycle import show_progress, start_and_wait
from pwrun.parslcfg import LOCAL_LABEL, check_monitoring, compat, local_config, monitoring_hub
from pwrun.parslcfg.executors import (
    ClusterSpec,
    ExecutorSpec,
    PbsSpec,
    by_scheduler,
    default_provider,
    load_executors_file,
)
from pwrun.parslcfg.failover import Routing
from pwrun.parslcfg.render import (
    SiteEndpoint,
    copy_certificates,
    make_certificates,
    refusals,
    render,
)
from pwrun.parslcfg.workflow import check_labels, merge, summary
from pwrun.process import Interrupts, ProcessRef, owns_signals
from pwrun.progress import Tracker, Watch, print_summary, shown
from pwrun.provision.envs import check_own_envs, with_label_envs, worker_init
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
from pwrun.transport.supervision import Supervisor, TunnelState

START_TIMEOUT = 15.0  # seconds a site may take to answer its first ssh command


@contextlib.contextmanager
def loaded(
    config: Config,
    fresh: Callable[[], Config],
    source: str,
    record: RunRecord,
    interrupts: Interrupts,
    tracker: Tracker,
) -> Iterator[list[DataFlowKernel]]:
    """Serve the workflow's loads: `parsl.load(pwrun.config())`, `parsl.load()` or its first app
    load `config`; its own `parsl.load(cfg)` loads `config` merged into `cfg` (pwrun.parslcfg.
    workflow). A load after the workflow cleaned up its DFK gets `fresh()` executors: a shut-down
    executor does not start again. `tracker` follows each DFK's tasks. Yields the DFKs loaded;
    pwrun cleans up those still loaded."""
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
        tracker.attach(dfk)

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


def monitoring(workflow: str, monitor: bool) -> Callable[[], MonitoringHub] | None:
    """With `monitor`, what makes each of the run's Configs its MonitoringHub; checked first."""
    if not monitor:
        return None
    check_monitoring()
    return lambda: monitoring_hub(Path(workflow).name)


def new_record(workflow: str, resume: RunRecord | None) -> tuple[RunRecord, list[str]]:
    """A new run's record, and the checkpoints it reuses (those of `resume`, if given)."""
    record = RunRecord(state.new_run_dir(), workflow, resumed_from=resume.id if resume else None)
    if resume is None:
        return record, []
    found = checkpoints(resume)
    err.print(f"pwrun: resuming run {resume.id} ({len(found)} checkpoint file(s))", highlight=False)
    return record, found


def run_workflow(
    workflow: Path,
    args: list[str],
    retries: int | None = None,
    resume: RunRecord | None = None,
    watch: Watch | None = None,
    monitor: bool = False,
) -> int:
    """Run `workflow` on the embedded local site and return its exit code; `retries`
    overrides the workflow's, `resume` is a run whose finished tasks are not run again;
    `watch` shows its progress; `monitor`: with Parsl's monitoring."""
    source = "the embedded local site (no -e EXECUTORS)"
    check_labels(workflow, [LOCAL_LABEL], source)
    hub = monitoring(str(workflow), monitor)
    watch = watch or Watch()
    interrupts = Interrupts()
    interrupts.install()
    record, resumed = new_record(str(workflow.resolve()), resume)
    watch.record = record
    routing = Routing(retries=retries)

    def fresh() -> Config:
        return local_config(record.directory, routing, resumed, hub and hub())

    try:
        with (
            loaded(fresh(), fresh, source, record, interrupts, watch.tracker) as dfks,
            record.stage(RunStatus.WORKFLOW),
            shown(watch.tracker, watch.interval),
        ):
            return run_script(workflow, args, dfks)
    finally:
        with interrupts.shielded():
            record.teardown()
        print_summary(watch.tracker)


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


def stop_run(site: str, why: str) -> None:
    """What a lost site does by default (its labels have nowhere else to go): the workflow is
    stopped as by Ctrl-C, torn down, and `on_sites` names the site (exit 3)."""
    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)


@contextlib.contextmanager
def supervised(record: RunRecord, on_lost: Callable[[str, str], None]) -> Iterator[Supervisor]:
    """Watch the run's tunnels (pwrun.transport.supervision) while open; a site declared lost
    goes to `on_lost(site, why)`."""
    supervisor = Supervisor(record.set_tunnel, on_lost)
    for executor in record.executors:
        opened = tunnel.load(executor.tunnel)
        if opened:
            supervisor.watch(executor.label, executor.site, opened, executor.ssh)
    supervisor.start()
    try:
        yield supervisor
    finally:
        supervisor.stop()


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
    watch: Watch | None = None,
    monitor: bool = False,
    start: Start | None = None,
) -> Iterator[Stages]:
    """The stages of a run on these executors (`source` names them in errors): inventory,
    (with `start`: the PW clusters that are off started, and the inventory read again),
    provision, tunnels, then the loads (pwrun.run.loaded) while open; teardown on exit, also
    after a failure or KeyboardInterrupt, stops the clusters it started. `pwrun run` and
    pwrun.session() both run these. `retries` (None: the workflow's) and ranked failover apply to
    every task; `resume` is a run whose checkpointed tasks are not run again.
    `watch` follows the tasks (a summary table at the end); `monitor`: Parsl's monitoring."""
    watch = watch or Watch()
    hub = monitoring(workflow, monitor)
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
    record, resumed = new_record(workflow, resume)
    watch.record = record
    record.timings["inventory"] = round(time.perf_counter() - started, 3)
    routing = Routing()  # until the sites are known (and started)
    lost_sites = ""  # the sites lost during the run that stopped it, if any
    try:
        if start and off and inventory is not None:
            with record.stage(RunStatus.CLUSTERS):
                start_and_wait(inventory, off, start.timeout, record.add_started, show_progress)
                clusters = read_inventory(inventory, flush_cache=True)  # now with addresses
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
        cert_dir = make_certificates(record.directory)
        sites = with_label_envs({site: clusters.ansible_hosts[site] for site in targets}, remote)
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
                check_own_envs(remote, targets, source)  # before any job, and quick
                facts, _ = ready(sites, targets, record.directory) if sites else ({}, [])
            with record.stage(RunStatus.TUNNELS):
                endpoints = {
                    label: dataclasses.replace(
                        future.result(),
                        worker_init=worker_init(label, remote[label], facts[remote[label].site]),
                        facts=facts[remote[label].site],
                    )
                    for label, future in opening.items()
                }
        specs = schedulers_chosen(specs, source, hosts, facts, record)  # every executor recorded

        def fresh() -> Config:
            return render(
                specs, endpoints, record.directory, cert_dir, routing, resumed, hub and hub()
            )

        config = fresh()
        (record.directory / state.RENDERED_CONFIG).write_text(repr(config))
        checked = time.perf_counter()
        refused = refusals(config, record.directory)
        record.timings["checks"] = round(time.perf_counter() - checked, 3)
        for label, said in refused.items():
            raise PwrunError(f"{source}: {label}: {specs[label].site} refuses its blocks: {said}")
        stops = owns_signals()  # a host that owns them (pwrun.session) only hears of it

        def on_lost(site: str, why: str) -> None:
            """A site the supervisor gave up on: its tasks fail over when every label on it
            has a fallback, or when the workflow is over (nothing left to stop); otherwise the
            run stops, naming it (exit 3)."""
            if site in routing.lost:
                return  # failover found it first: its tasks have failed or moved already
            labels = [label for label, spec in remote.items() if spec.site == site]
            ending = record.teardown_started is not None
            if all(specs[label].fallback for label in labels) or not stops or ending:
                routing.site_lost(site, why)
            else:
                stop_run(site, why)

        with (
            loaded(config, fresh, source, record, interrupts, watch.tracker) as dfks,
            supervised(record, on_lost) as supervisor,
        ):
            try:
                yield Stages(record, dfks, routing)
            except KeyboardInterrupt:
                if not supervisor.lost:
                    raise
                lost_sites = "; ".join(f"site {s} lost: {w}" for s, w in supervisor.lost.items())
                raise InfrastructureError(lost_sites) from None  # stop_run's, not the user's
            finally:
                record.teardown_started = time.perf_counter()  # Parsl's own cleanup counts too
    finally:
        with interrupts.shielded():
            problems = record.teardown()
        print_summary(watch.tracker)
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
            raise InfrastructureError(
                "; ".join(filter(None, [lost_sites, "teardown incomplete: " + "; ".join(problems)]))
            )


def run_on_sites(
    workflow: Path,
    args: list[str],
    executors_file: Path,
    inventory: Path | None,
    retries: int | None = None,
    resume: RunRecord | None = None,
    watch: Watch | None = None,
    monitor: bool = False,
    start: Start | None = None,
) -> int:
    """The whole run: the stages (on_sites) around the workflow, under pwrun's own signal
    handling. `retries` wins over the executors file's; `resume`: see on_sites; `watch` shows
    its progress; `monitor`: with Parsl's monitoring."""
    watch = watch or Watch()
    interrupts = Interrupts()
    interrupts.install()
    loaded_file = load_executors_file(executors_file)
    specs = loaded_file.labels
    check_labels(workflow, specs, str(executors_file))
    retries = loaded_file.retries(retries)
    with (
        on_sites(
            specs,
            str(executors_file),
            inventory,
            str(workflow.resolve()),
            interrupts,
            retries,
            resume,
            watch,
            monitor,
            start,
        ) as run,
        run.record.stage(RunStatus.WORKFLOW),
        shown(watch.tracker, watch.interval),
    ):  # fmt: skip
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
    record.set_tunnel(label, TunnelState.OPEN, 0)
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
