"""The `pwrun` command line: a thin face over the library."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from pwrun import __version__
from pwrun.errors import PwrunError

app = typer.Typer(
    name="pwrun",
    help="Run one Parsl workflow across several Slurm clusters: "
    "find them, make them ready, tunnel, run, tear down.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = Console(stderr=True)


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a PwrunError into one red line on stderr and its exit code, with no traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except PwrunError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(exc.exit_code) from None

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
) -> None:
    """Run a Parsl workflow on the clusters of an executors file (else on this machine)."""
    from pwrun.run import run_on_sites, run_workflow

    if executors is None:
        raise typer.Exit(run_workflow(workflow, args or []))
    if inventory is None:
        raise PwrunError("--executors needs --inventory (a static inventory or a *.pwrun.yml)")
    raise typer.Exit(run_on_sites(workflow, args or [], executors, inventory))


@app.command()
@reports_errors
def inventory(
    file: Annotated[
        Path, typer.Argument(help="Inventory file, named *pwrun.yml (the Ansible plugin's file).")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON: {clusters: [...], errors: [...]}.")
    ] = False,
    strict: Annotated[
        bool | None,
        typer.Option("--strict/--no-strict", help="Fail when any source fails (default: file)."),
    ] = None,
) -> None:
    """List the cluster controllers the inventory file's sources can see."""
    import dataclasses
    import json

    from rich.table import Table

    from pwrun.inventory import list_configured, load_config

    config = load_config(file)
    if strict is not None:
        config = dataclasses.replace(config, strict=strict)
    listing = list_configured(config)
    if as_json:
        clusters = [dict(c.model_dump(mode="json"), address=c.address) for c in listing.clusters]
        errors = [{"source": e.source, "message": str(e)} for e in listing.errors]
        typer.echo(json.dumps({"clusters": clusters, "errors": errors}, indent=2))
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
            table.add_row(
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
        Console().print(table)
    for error in listing.errors:
        err.print(f"[bold yellow]warning:[/] {error}", highlight=False)


@app.command()
@reports_errors
def provision() -> None:
    """Make every cluster ready (Python env, tunnels) with ansible-runner."""
    raise PwrunError("`pwrun provision` is not available in this build yet")


@app.command()
@reports_errors
def config() -> None:
    """Print the rendered Parsl configuration."""
    raise PwrunError("`pwrun config` is not available in this build yet")


@app.command()
@reports_errors
def down() -> None:
    """Tear down what a run left behind: tunnels, Slurm blocks, remote temporaries."""
    raise PwrunError("`pwrun down` is not available in this build yet")


@app.command()
@reports_errors
def status() -> None:
    """Show the sites, tunnels and blocks of the current run."""
    raise PwrunError("`pwrun status` is not available in this build yet")


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
) -> None:
    """Bring up lab sites and print the lab directory (ssh_config, known_hosts, inventory.yml)."""
    from pwrun.lab import Lab, LabError

    try:
        lab = Lab.up(sites=sites, compute_nodes=compute_nodes, directory=directory)
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
    from pwrun.lab import Lab, down_all

    if directory is not None:
        if not (directory / "lab.json").is_file():
            raise PwrunError(f"{directory}: not a lab directory (no lab.json)")
        Lab.load(directory).down()
    if all_labs:
        for removed in down_all():
            typer.echo(f"removed {removed}")
    elif directory is None:
        raise PwrunError("give a lab directory, or --all")


if __name__ == "__main__":
    app()
