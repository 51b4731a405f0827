"""Files and streams of tasks on two "sites" through a real DataFlowKernel: the executors are
Parsl's ThreadPoolExecutor with pwrun's MovesFiles mixed in, each site a directory here reached
through a local shell in place of ssh."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import parsl
import pytest
from parsl import File, bash_app, python_app
from parsl.app.errors import BashExitFailure
from parsl.config import Config
from parsl.executors import ThreadPoolExecutor

from pwrun.data.cache import ObjectCache
from pwrun.parslcfg import compat
from pwrun.parslcfg.staging import MovesFiles, plan_task
from pwrun.transport.contents import TransferError
from pwrun.transport.files import SiteFiles
from tests.unit.test_files import LocalShell


class ThreadSite(MovesFiles, ThreadPoolExecutor):
    """Tasks run in threads here, as if on a site whose filesystem is `tmp_path/<site>`."""


@pytest.fixture
def workstation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.chdir(ws)
    executors = []
    objects = ObjectCache(tmp_path / "objects")
    for label in ("a", "b"):
        executor = ThreadSite(label=label, max_threads=4)
        run = tmp_path / f"site-{label}" / "run"
        executor.attach(SiteFiles(f"site-{label}", LocalShell("login"), f"{run}/files"),
                        f"{run}/{label}", objects)  # fmt: skip
        executors.append(executor)
    with parsl.load(Config(executors=executors, run_dir=str(tmp_path / "runinfo"))):
        yield ws
    assert not objects.directory.exists()  # the cache goes with the executors


@python_app(executors=["a"])
def transform(inputs: list[File], outputs: list[File]) -> str:
    with open(inputs[0]) as source, open(outputs[0], "w") as out:
        out.write(source.read().upper())
    return inputs[0].filepath


@python_app(executors=["b"])
def analyse(inputs: list[File], outputs: list[File]) -> str:
    text = Path(inputs[0]).read_text()
    with open(outputs[0].filepath, "w") as out:
        out.write(f"{len(text.split())} words: {text}")
    return inputs[0].filepath


@python_app(executors=["a"])
def forgets(outputs: list[File]) -> None:
    """Does not write its output."""


@bash_app(executors=["a"])
def shout(word: str, fail: bool = False, stdout: object = None, stderr: object = None) -> str:
    return f"echo {word}; echo {word} to stderr >&2" + ("; exit 3" if fail else "")


def test_a_pipeline_across_sites_goes_through_the_workstation(workstation: Path) -> None:
    (workstation / "in.txt").write_text("hello across sites")
    first = transform(inputs=[File(str(workstation / "in.txt"))], outputs=[File("mid.txt")])
    summary = File("file://" + str(workstation / "summary.txt"))
    second = analyse(inputs=[first.outputs[0]], outputs=[summary])
    seen_on_b = second.result(timeout=60)
    assert first.result().startswith(str(workstation.parent / "site-a/run/files/inputs/"))
    assert seen_on_b.startswith(str(workstation.parent / "site-b/run/files/inputs/"))
    assert (workstation / "mid.txt").read_text() == "HELLO ACROSS SITES"
    assert (workstation / "summary.txt").read_text() == "3 words: HELLO ACROSS SITES"
    assert second.outputs[0].result().filepath == str(workstation / "summary.txt")


def test_one_input_goes_once_per_site(workstation: Path) -> None:
    (workstation / "shared.txt").write_text("x" * 1000)
    shared = File("shared.txt")
    futures = [transform(inputs=[shared], outputs=[File(f"o{i}.txt")]) for i in range(20)]
    assert len({f.result(timeout=60) for f in futures}) == 1
    sent = parsl.dfk().executors["a"].files.bytes_sent
    assert sent == 1000 and (workstation / "o19.txt").read_text() == "X" * 1000


def test_bash_streams_are_on_the_workstation_when_the_app_ends(workstation: Path) -> None:
    ok = shout("hi", stdout=parsl.AUTO_LOGNAME, stderr=("err.txt", "w"))
    assert ok.result(timeout=60) == 0
    assert Path(ok.stdout).read_text() == "hi\n" and ok.stdout.startswith(str(workstation.parent))
    assert (workstation / "err.txt").read_text().endswith("hi to stderr\n")
    failed = shout("oops", fail=True, stdout="logs/out.txt", stderr=parsl.AUTO_LOGNAME)
    with pytest.raises(BashExitFailure):
        failed.result(timeout=60)
    assert Path(failed.stderr).read_text().endswith("oops to stderr\n")
    shout("again", stdout="logs/out.txt").result(timeout=60)  # a path appends, as in Parsl
    assert (workstation / "logs/out.txt").read_text() == "oops\nagain\n"


def test_an_output_the_app_did_not_create_fails_it(workstation: Path) -> None:
    future = forgets(outputs=[File("never.txt")])
    with pytest.raises(TransferError) as failed:
        future.result(timeout=60)
    message = str(failed.value)
    assert message.startswith(f"{workstation}/never.txt (from site-a:{workstation.parent}/site-a")
    assert message.endswith("not on the site (No such file or directory)")
    with pytest.raises(TransferError):
        future.outputs[0].result(timeout=60)
    assert not (workstation / "never.txt").exists()


def test_a_missing_input_fails_the_app_naming_it(workstation: Path) -> None:
    future = transform(inputs=[File("absent.txt")], outputs=[File("x.txt")])
    with pytest.raises(TransferError, match=f"input {workstation}/absent.txt for site-a: No such"):
        future.result(timeout=60)


def test_only_bash_apps_streams_are_moved_and_originals_stay_untouched() -> None:
    kwargs = {"stdout": "out.txt", "inputs": [File("/data/in.csv")], "outputs": [File("o.csv")]}
    plan = plan_task(
        compat.app_failed, ("x",), kwargs, "/site/run/a/tasks/7", "/s", "out/a/7", Path("/ws")
    )
    assert plan.streams == [] and plan.output_dirs == ["out/a/7/0"]
    args, placed = plan.bind(("x",), kwargs, ["/s/inputs/k/in.csv"])
    assert args == ("x",) and placed["stdout"] == "out.txt"
    assert placed["inputs"][0].filepath == "/s/inputs/k/in.csv"
    assert placed["outputs"][0].filepath == "/s/out/a/7/0/o.csv"
    assert (
        kwargs["inputs"][0].filepath == "/data/in.csv" and kwargs["outputs"][0].local_path is None
    )
