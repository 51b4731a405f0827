"""Data across two lab sites under `pwrun run`: Files follow their tasks through the
workstation, bash_app streams come back from compute nodes, and every failure names its file."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from pwrun.lab import Lab
from pwrun.lab.model import LAB_UID, LAB_USER
from tests.data.conftest import Store, gcs_store, s3_store
from tests.run.test_run_lab import WORKFLOWS, assert_nothing_left, pwrun

pytestmark = pytest.mark.lab
__all__ = ["gcs_store", "s3_store"]  # the stores' fixtures, used here
DATA = WORKFLOWS / "data.py"
EXECUTORS = WORKFLOWS / "data.executors.yml"


def run_data(lab: Lab, home: Path, *args: str) -> list[str]:
    proc = pwrun("run", str(DATA), *args, "-e", str(EXECUTORS), "-i", str(lab.inventory),
                 home=home)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_nothing_left(lab)  # the run's files went with its remote directories
    return proc.stdout.splitlines()


def line(lines: list[str], start: str) -> list[str]:
    return next(x for x in lines if x.startswith(start + " ")).split(" ")[1:]


def test_a_file_goes_through_site_a_then_site_b_and_back(lab: Lab, tmp_path: Path) -> None:
    source = tmp_path / "source.txt"
    source.write_text("data follows its tasks\n")
    out = tmp_path / "out"
    out.mkdir()
    lines = run_data(lab, tmp_path, "pipeline", str(source), str(out))
    code, _, stderr = line(lines, "transform")
    a, b = lab.sites
    assert code == "0" and (out / "upper.txt").read_text() == "DATA FOLLOWS ITS TASKS\n"
    host, seen_on_a = Path(stderr).read_text().splitlines()[-2:]  # the app's own lines
    assert host in {n.hostname for n in a.computes}
    assert re.fullmatch(
        rf"/home/{LAB_USER}/\.pwrun/runs/[^/]+/files/inputs/\w+/source\.txt", seen_on_a
    )
    host, seen_on_b = line(lines, "analysis")
    assert host in {n.hostname for n in b.computes} and seen_on_b.endswith("/upper.txt")
    assert (out / "analysis.txt").read_text() == "4 words: DATA FOLLOWS ITS TASKS\n"
    assert (out / "summary.txt").read_text() == "summary of 4 words: DATA FOLLOWS ITS TASKS\n"
    assert not list(tmp_path.rglob("*.part"))


def test_bash_streams_from_a_compute_node_are_readable_here(lab: Lab, tmp_path: Path) -> None:
    lines = run_data(lab, tmp_path, "streams")
    code, stdout = line(lines, "ok")
    host, words = Path(stdout).read_text().splitlines()
    assert code == "0" and words == "hello" and host in {n.hostname for n in lab.sites[0].computes}
    assert stdout.startswith(str(tmp_path / "state" / "runs"))  # AUTO_LOGNAME: the run's logs
    error, stderr = line(lines, "failed")
    assert error == "BashExitFailure" and Path(stderr).read_text().endswith("broken on stderr\n")


@pytest.fixture
def tiny_site_disk(lab: Lab) -> Iterator[None]:
    """A 1 MB filesystem at ~/tiny on site-a's login node (where files arrive)."""
    login = lab.sites[0].login
    tiny = f"/home/{LAB_USER}/tiny"
    mount = f"mkdir -p {tiny} && mount -t tmpfs -o size=1m,mode=700,uid={LAB_UID} tmpfs {tiny}"
    assert login.exec(mount).returncode == 0
    yield
    left = login.exec(f"ls -A {tiny}").stdout
    login.exec(f"umount {tiny}; rmdir {tiny}")
    assert left == "", f"left on the full disk: {left}"


def test_each_failure_fails_its_app_naming_file_site_and_cause(
    lab: Lab, tmp_path: Path, tiny_site_disk: None
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    cases = {
        x.split(" ", 1)[0]: x.split(" ", 2)[1:]
        for x in run_data(lab, tmp_path, "failures", str(out))
    }
    assert set(cases) == {"missing", "not-created", "disk-full", "unwritable"}
    assert all(kind == "TransferError" for kind, _ in cases.values()), cases
    assert cases["missing"][1] == (
        f"input {out}/absent.txt for site-a: No such file or directory on the workstation"
    )
    assert re.fullmatch(
        rf"{out}/never\.txt \(from site-a:/home/{LAB_USER}/\.pwrun/runs/.*/never\.txt\): "
        r"not on the site \(No such file or directory\)", cases["not-created"][1]
    )  # fmt: skip
    assert re.fullmatch(
        rf"sending {out}/big\.bin to site-a: No space left on device: 29\d\d KiB needed in "
        rf"/home/{LAB_USER}/tiny/.*/files, \d+ KiB free",
        cases["disk-full"][1],
    )
    assert re.fullmatch(
        rf"{out}/blocker/w\.txt \(from site-a:.*/w\.txt\): .* on the workstation",
        cases["unwritable"][1],
    )
    assert sorted(p.name for p in out.iterdir()) == ["big.bin", "blocker"]  # nothing half-made


def test_objects_go_through_a_lab_site(
    lab: Lab, tmp_path: Path, s3_store: Store, gcs_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An app on site-a reads an s3:// input and writes a gs:// output: both are moved by the
    workstation, whose credentials never reach the site."""
    for name, value in (s3_store.env | gcs_store.env).items():
        monkeypatch.setenv(name, value)
    s3_store.put("lab/in.txt", b"objects travel too\n")
    source, destination = s3_store.url("lab/in.txt"), gcs_store.url("lab/out.txt")
    proc = pwrun("run", str(DATA), "objects", source, destination, "-e", str(EXECUTORS),
                 "-i", str(lab.inventory), home=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_nothing_left(lab)
    url, code = line(proc.stdout.splitlines(), "objects")
    assert (url, code) == (destination, "0")
    assert gcs_store.read("lab/out.txt") == b"OBJECTS TRAVEL TOO\n"
    for secret in s3_store.all_secrets() + gcs_store.all_secrets():
        assert secret not in proc.stdout + proc.stderr
    assert not list((tmp_path / "state").rglob("objects/*"))  # the cache went with the run
