"""The `pwrun` command line: a thin face over the library."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from pwrun import __version__, state
from pwrun.console import err, error, warn
from pwrun.errors import InfrastructureError, PwrunError
from pwrun.process import INTERRUPTED
from pwrun.validation import MAX_RETRIES

app = typer.Typer(
    name="pwrun",
    help="Run one Parsl workflow across several Slurm clusters: "
    "find them, make them ready, tunnel, run, tear down.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a PwrunError into one red line on stderr and its exit code, with no traceback;
    Ctrl-C (or SIGTERM), once whatever the command started is stopped, into exit 130."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except PwrunError as exc:
            error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted: torn down", highlight=False)
            raise typer.Exit(INTERRUPTED) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pwrun {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """pwrun: multi-site Parsl workflows over SSH, made ready by Ansible."""


@app.command()
@reports_errors
def run(
    workflow: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Parsl script.")],
    args: Annotated[list[str] | None, typer.Argument(help="Arguments for the workflow.")] = None,
    executors: Annotated[
        Path | None, typer.Option("-e", "--executors", help="Executors file (YAML, or JSON).")
    ] = None,
    inventory: Annotated[
        Path | None, typer.Option("-i", "--inventory", help="Ansible inventory of the clusters.")
    ] = None,
    retries: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=MAX_RETRIES,
            help="Retries per task (wins over the executors file's and the workflow's Config).",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Skip the tasks the latest run of this workflow finished (apps with cache=True).",
        ),
    ] = False,
    resume_from: Annotated[
        str | None,
        typer.Option(help="Like --resume, from this run (an id `pwrun status` shows)."),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            help="Write a JSON summary here when the run ends (exit code, timings, "
            "tasks per label)."
        ),
    ] = None,
    junit: Annotated[
        Path | None,
        typer.Option(
            help="Write a JUnit XML file here when the run ends (a test case per app function)."
        ),
    ] = None,
    progress_interval: Annotated[
        float,
        typer.Option(
            min=0, help="Seconds between progress lines when stderr is not a terminal (0: none)."
        ),
    ] = 10.0,
    monitor: Annotated[
        bool,
        typer.Option(help="Record the run with Parsl's monitoring (see `pwrun monitor`)."),
    ] = False,
    start: Annotated[
        bool,
        typer.Option(
            "--start",
            help="Start the run's PW clusters that are off, and stop them when the run ends.",
        ),
    ] = False,
    start_timeout: Annotated[
        float, typer.Option("--start-timeout", min=0, help="Seconds to wait for them to be on.")
    ] = 1800,
) -> None:
    """Run a Parsl workflow on the clusters of an executors file (else on this machine)."""
    from pwrun.checkpoints import resumed_run
    from pwrun.progress import Watch
    from pwrun.report import Reports
    from pwrun.run import Start, run_on_sites, run_workflow

    reports = Reports(workflow, report, junit, Watch(progress_interval))
    earlier = resumed_run(workflow, resume_from) if resume or resume_from else None
    if executors is None:
        raise typer.Exit(reports.written(
            lambda: run_workflow(workflow, args or [], retries, earlier, reports.watch, monitor)
        ))  # fmt: skip
    started = Start(start_timeout) if start else None
    raise typer.Exit(reports.written(
        lambda: run_on_sites(workflow, args or [], executors, inventory, retries, earlier,
                             reports.watch, monitor, started)
    ))  # fmt: skip


@app.command()
@reports_errors
def jupyter(
    site: Annotated[str, typer.Argument(help="The cluster (an inventory host).")],
    inventory: Annotated[
        Path, typer.Option("-i", "--inventory", help="Ansible inventory of the clusters.")
    ],
    partition: Annotated[
        str | None, typer.Option("--partition", help="Run it in a Slurm job on this partition.")
    ] = None,
    controller: Annotated[
        bool, typer.Option("--controller", help="Run it on the controller (the default).")
    ] = False,
    port: Annotated[
        int | None, typer.Option("--port", help="Workstation loopback port (default: a free one).")
    ] = None,
) -> None:
    """Start JupyterLab from a cluster's provisioned env and forward it here until Ctrl-C."""
    from pwrun.jupyter import jupyter as serve

    if partition is not None and controller:
        raise PwrunError("--partition and --controller exclude each other: choose one")

    def serving(url: str) -> None:
        typer.echo(f"JupyterLab: {url}")
        err.print("Ctrl-C stops it and tears it down", style="dim", highlight=False)

    serve(site, inventory, partition, port, serving)


@app.command()
@reports_errors
def inventory(
    file: Annotated[
        Path, typer.Argument(help="Inventory file, named *pwrun.yml (the Ansible plugin's file).")
    ],
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print JSON: {clusters: [...], errors: [...], notes: [...]}."),
    ] = False,
    strict: Annotated[
        bool | None,
        typer.Option(
            "--strict/--no-strict",
            help="Fail on any source problem: a failed source, a skipped record, a duplicate "
            "name, a passed deadline (default: the file's strict_sources).",
        ),
    ] = None,
) -> None:
    """List the cluster controllers the inventory file's sources can see."""
    import dataclasses
    import json

    from rich.markup import escape
    from rich.table import Table

    from pwrun.inventory import list_configured, load_config

    config = load_config(file)
    if strict is not None:
        config = dataclasses.replace(config, strict_sources=strict)
    listing = list_configured(config)
    if as_json:
        clusters = [dict(c.model_dump(mode="json"), address=c.address) for c in listing.clusters]
        errors = [{"source": e.source, "message": str(e)} for e in listing.errors]
        output = {"clusters": clusters, "errors": errors, "notes": listing.notes}
        typer.echo(json.dumps(output, indent=2))
    else:
        table = Table(
            "name",
            "source",
            "status",
            "scheduler",
            "address",
            "user",
            "partitions",
            "work dir",
            "location",
        )
        for c in listing.clusters:
            location = "/".join(filter(None, (c.cloud, c.region, c.zone)))
            cells = (
                c.name,
                c.source,
                c.status,
                c.scheduler,
                c.address or "-",
                c.user or "-",
                ",".join(c.partitions) or "-",
                c.work_dir or "-",
                location or "-",
            )
            table.add_row(*map(escape, cells))  # partitions and places are free-form API text
        Console().print(table)
    for message in listing.warnings:
        warn(message)


InventoryOption = Annotated[
    Path, typer.Option("-i", "--inventory", help="Ansible inventory of the clusters.")
]


@app.command()
@reports_errors
def provision(
    inventory: InventoryOption,
    limit: Annotated[
        list[str] | None, typer.Option("--limit", "-l", help="Only these clusters.")
    ] = None,
) -> None:
    """Make clusters ready (Python env with this Parsl, facts) with ansible-runner."""
    from rich.table import Table

    from pwrun.provision.ready import converge

    facts = converge(inventory, limit, state.new_run_dir())
    table = Table("cluster", "worker env", "partitions", "cores/node")
    for host in sorted(facts):
        f = facts.get(host, {})
        table.add_row(
            host,
            f.get("pwrun_python", ""),
            ",".join(f.get("pwrun_partitions", [])),
            str(f.get("pwrun_cores_per_node", "")),
        )
    Console().print(table)


@app.command()
@reports_errors
def config(
    run_id: Annotated[str | None, typer.Argument(help="A run (default: the latest).")] = None,
) -> None:
    """Print the rendered Parsl configuration of a run."""
    from pwrun.runstate import all_runs

    runs = [r for r in all_runs() if run_id in (None, r.id)]
    if not runs:
        raise PwrunError(f"no run {run_id!r}" if run_id else "no run yet: `pwrun run` first")
    rendered = runs[-1].directory / state.RENDERED_CONFIG
    if not rendered.is_file():
        raise PwrunError(f"run {runs[-1].id} ended before its configuration was rendered")
    typer.echo(rendered.read_text())


@app.command()
@reports_errors
def monitor(
    run_id: Annotated[
        str | None, typer.Argument(help="A run made with --monitor (default: the latest).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Loopback port (default: a free one).")
    ] = None,
) -> None:
    """Serve Parsl's monitoring view of a run on this machine's loopback, until Ctrl-C."""
    from pwrun.monitor import serve

    serve(run_id, port)


@app.command()
@reports_errors
def down(
    run_id: Annotated[str | None, typer.Argument(help="A run (default: every dead run).")] = None,
) -> None:
    """Tear down what runs left behind: tunnels, Slurm blocks, remote temporaries."""
    from pwrun.runstate import all_runs

    runs = [r for r in all_runs() if r.status != "down" and run_id in (None, r.id)]
    if run_id and not runs:
        raise PwrunError(f"no run {run_id!r} to tear down")
    problems = []
    for record in runs:
        if record.process_alive():
            err.print(f"run {record.id} is still running (pid {record.process.pid}): left alone")
            continue
        left = record.teardown()
        if left:
            typer.echo(f"run {record.id}: NOT torn down ({len(left)} left, still recorded)")
        else:
            typer.echo(f"run {record.id}: torn down")
        problems += left
    if problems:
        raise InfrastructureError("teardown incomplete: " + "; ".join(problems))


@app.command()
@reports_errors
def status() -> None:
    """Show the sites, tunnels and Slurm blocks of runs that are not torn down."""
    from dataclasses import astuple

    from rich.markup import escape
    from rich.table import Table

    from pwrun.runstate import ExecutorStatus, statuses

    table = Table(*ExecutorStatus.__dataclass_fields__)
    for row in statuses():
        table.add_row(*map(escape, astuple(row)))
    Console().print(table)


clusters_app = typer.Typer(help="Turn PW clusters on and off, through the platform's API.")
app.add_typer(clusters_app, name="clusters")
Names = Annotated[list[str], typer.Argument(help="Cluster names (inventory hosts).")]
ClusterInventory = Annotated[
    Path, typer.Option("-i", "--inventory", help="Inventory file (*.pwrun.yml) with a pw source.")
]
Timeout = Annotated[
    float, typer.Option("--timeout", min=0, help="Seconds to wait for every cluster.")
]


@clusters_app.command("start")
@reports_errors
def clusters_start(names: Names, inventory: ClusterInventory, timeout: Timeout = 1800) -> None:
    """Start the clusters that are off and wait until each is on; if one fails or is late, stop
    the ones this command started."""
    from pwrun.inventory.pw.lifecycle import StartedCluster, show_progress, start_and_wait, stop_all

    started: list[StartedCluster] = []
    try:
        start_and_wait(inventory, names, timeout, started.append, show_progress)
    except BaseException:
        for problem in stop_all(started).problems:
            warn(f"could not stop what this command started: {problem}")
        raise
    typer.echo(f"on: {', '.join(names)}")


@clusters_app.command("stop")
@reports_errors
def clusters_stop(names: Names, inventory: ClusterInventory, timeout: Timeout = 600) -> None:
    """Stop the clusters that are on and wait until each is off."""
    from pwrun.inventory.pw.lifecycle import PwClusters, show_progress

    clusters = PwClusters(inventory)
    clusters.stop_each(names)
    clusters.wait(names, "off", timeout, show_progress)
    typer.echo(f"off: {', '.join(names)}")


@clusters_app.command("status")
@reports_errors
def clusters_status(names: Names, inventory: ClusterInventory) -> None:
    """Show each cluster's power state, the platform's own status and its address."""
    from rich.markup import escape
    from rich.table import Table

    from pwrun.inventory.pw.lifecycle import PwClusters

    table = Table("name", "state", "platform status", "address")
    for power in PwClusters(inventory).powers(names).values():
        table.add_row(
            *(escape(v) for v in (power.name, power.state, power.status, power.address or ""))
        )
    Console().print(table)


lab_app = typer.Typer(help="The developers' lab: simulated Slurm sites on this machine (root).")
app.add_typer(lab_app, name="lab")


@lab_app.command("up")
@reports_errors
def lab_up(
    sites: Annotated[int, typer.Option(min=1, max=26, help="Number of sites.")] = 2,
    compute_nodes: Annotated[int, typer.Option(min=1, max=8, help="Compute nodes per site.")] = 1,
    directory: Annotated[
        Path | None, typer.Option(help="Lab directory (default: a new one).")
    ] = None,
    scheduler: Annotated[
        str,
        typer.Option(
            help="slurm, or torque: login nodes offer Slurm's Torque wrappers (qsub...), no sinfo."
        ),
    ] = "slurm",
) -> None:
    """Bring up lab sites and print the lab directory (ssh_config, known_hosts, inventory.yml)."""
    from pwrun.lab import Lab, LabError

    try:
        lab = Lab.up(sites, compute_nodes, directory, scheduler)
    except LabError as exc:
        raise PwrunError(f"lab: {exc}") from None
    typer.echo(lab.directory)


@lab_app.command("down")
@reports_errors
def lab_down(
    directory: Annotated[Path | None, typer.Argument(help="Lab directory printed by `up`.")] = None,
    all_labs: Annotated[
        bool, typer.Option("--all", help="Remove every lab namespace and table on this machine.")
    ] = False,
) -> None:
    """Tear a lab down, leaving nothing behind."""
    from pwrun.lab import Lab, LabError, down_all

    if directory is not None:
        if not (directory / "lab.json").is_file():
            raise PwrunError(f"{directory}: not a lab directory (no lab.json)")
        try:
            Lab.load(directory).down()
        except LabError as exc:
            raise PwrunError(f"lab: {exc}") from None
    if all_labs:
        for removed in down_all():
            typer.echo(f"removed {removed}")
    elif directory is None:
        raise PwrunError("give a lab directory, or --all")


if __name__ == "__main__":
    app()
