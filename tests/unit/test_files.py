"""Files to and from a site: the real scripts and tar streams, run by a local shell standing in
for ssh (the "site" is a directory here); batching, content keys and failures."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pwrun.transport import contents, files
from pwrun.transport.batching import Batches
from pwrun.transport.contents import TransferError
from pwrun.transport.files import Fetch, SiteFiles
from pwrun.transport.ssh import SSHTarget


@dataclass(frozen=True)
class LocalShell(SSHTarget):
    """A target whose commands run here, in `sh -c`."""

    def argv(self, *args: str, multiplex: bool = True) -> list[str]:
        return ["sh", "-c"]

    def copy_argv(self) -> list[str]:
        return ["cp", "--"]

    def remote(self, path: str) -> str:
        return path


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every command sent to the site."""
    calls: list[list[str]] = []
    popen = subprocess.Popen

    def counted(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        calls.append(argv)
        return popen(argv, **kwargs)

    monkeypatch.setattr(files.subprocess, "Popen", counted)
    return calls


@pytest.fixture
def site(tmp_path: Path) -> SiteFiles:
    return SiteFiles("site-a", LocalShell("login"), str(tmp_path / "site" / "run" / "files"))


def workstation_file(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / "ws" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_a_content_goes_once_and_each_name_links_to_it(
    site: SiteFiles, tmp_path: Path, round_trips: list[list[str]]
) -> None:
    a = workstation_file(tmp_path, "a.csv", b"same")
    b = workstation_file(tmp_path, "b b.csv", b"same")
    c = workstation_file(tmp_path, "c.txt", b"other")
    first = site.put([a, b, c], ["out/x/0/0"]).result(timeout=30)
    key, other = Path(first[0]).parent.name, Path(first[2]).parent.name
    assert first == [f"{site.store}/inputs/{key}/a.csv", f"{site.store}/inputs/{key}/b_b.csv",
                     f"{site.store}/inputs/{other}/c.txt"]  # fmt: skip
    assert key == hashlib.sha256(b"same").hexdigest()[: contents.KEY_LENGTH] != other
    assert [Path(p).read_bytes() for p in first] == [b"same", b"same", b"other"]
    assert site.bytes_sent == 2 * len(b"same") + len(b"other") and len(round_trips) == 1
    assert (Path(site.store) / "out/x/0/0").is_dir()
    assert os.stat(first[0]).st_ino == os.stat(first[1]).st_ino  # one content, two names
    assert sorted(os.listdir(site.store)) == ["inputs", "objects", "out"]  # no incoming left
    again = site.put([a, c]).result(timeout=30)
    assert again == [first[0], first[2]] and len(round_trips) == 1  # known: no round trip


def test_requests_made_meanwhile_go_in_one_batch() -> None:
    release = threading.Event()
    batches: list[int] = []

    def handle(batch: list[tuple[int, Future[None]]]) -> None:
        release.wait(10)
        batches.append(len(batch))
        for _, future in batch:
            future.set_result(None)

    batcher: Batches[int, None] = Batches("test", handle)
    first = batcher.submit(0)
    rest = [batcher.submit(i) for i in range(1, 300)]
    release.set()
    for future in [first, *rest]:
        future.result(timeout=10)
    assert batches in ([1, 299], [300])


def test_a_missing_input_fails_its_request_alone(site: SiteFiles, tmp_path: Path) -> None:
    present = workstation_file(tmp_path, "here.txt", b"x")
    missing = site.put([tmp_path / "ws" / "gone.txt"])
    fine = site.put([present])
    with pytest.raises(TransferError) as failed:
        missing.result(timeout=30)
    assert str(failed.value) == (
        f"input {tmp_path}/ws/gone.txt for site-a: No such file or directory on the workstation"
    )
    assert Path(fine.result(timeout=30)[0]).read_bytes() == b"x"


def test_a_site_that_cannot_store_fails_loudly_and_keeps_nothing(
    site: SiteFiles, tmp_path: Path
) -> None:
    Path(site.store).mkdir(parents=True)
    (Path(site.store) / "objects").mkdir()
    (Path(site.store) / "inputs").write_text("in the way")  # links cannot be made
    path = workstation_file(tmp_path, "in.txt", b"data")
    with pytest.raises(TransferError, match=rf"sending {path} to site-a: .*inputs.*"):
        site.put([path]).result(timeout=30)
    assert not site.objects and not site.links  # not believed sent: tried again next time
    assert [p.name for p in Path(site.store).iterdir() if p.name.startswith(".")] == []


def test_fetches_land_complete_at_their_destinations(
    site: SiteFiles, tmp_path: Path, round_trips: list[list[str]]
) -> None:
    remote = Path(site.store) / "out"
    remote.mkdir(parents=True)
    (remote / "r.txt").write_bytes(b"result")
    (remote / "log").write_bytes(b"two\n")
    log = workstation_file(tmp_path, "logs/task.stdout", b"one\n")
    site.get([
        Fetch(str(remote / "r.txt"), tmp_path / "ws" / "new" / "r.txt"),
        Fetch(str(remote / "log"), log, append=True),
        Fetch(str(remote / "never"), tmp_path / "ws" / "never", required=False),
    ]).result(timeout=30)  # fmt: skip
    assert (tmp_path / "ws/new/r.txt").read_bytes() == b"result"
    assert log.read_bytes() == b"one\ntwo\n" and len(round_trips) == 1
    assert not (tmp_path / "ws" / "never").exists()
    assert not list((tmp_path / "ws").rglob("*.part"))


def test_a_missing_output_names_the_file_the_site_and_the_cause(
    site: SiteFiles, tmp_path: Path
) -> None:
    gone = f"{site.store}/out/0/missing.txt"
    with pytest.raises(TransferError) as failed:
        site.get([Fetch(gone, tmp_path / "ws" / "missing.txt")]).result(timeout=30)
    assert str(failed.value) == (
        f"{tmp_path}/ws/missing.txt (from site-a:{gone}): "
        "not on the site (No such file or directory)"
    )


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(tmp_path: Path) -> None:
    dest = workstation_file(tmp_path, "dest/big", b"old")

    def disk_fills() -> Iterator[bytes]:
        yield b"x" * 1000
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        contents.write_atomically(dest, disk_fills())
    assert dest.read_bytes() == b"old" and os.listdir(dest.parent) == ["big"]


def test_an_unwritable_destination_fails_its_file_alone(site: SiteFiles, tmp_path: Path) -> None:
    remote = Path(site.store) / "r"
    remote.mkdir(parents=True)
    for name in ("one", "two"):
        (remote / name).write_bytes(name.encode() * 100_000)
    workstation_file(tmp_path, "blocker", b"a file, not a directory")
    fetches = [Fetch(str(remote / "one"), tmp_path / "ws/blocker/one"),
               Fetch(str(remote / "two"), tmp_path / "ws/two")]  # fmt: skip
    blocked, fine = site.get(fetches[:1]), site.get(fetches[1:])
    with pytest.raises(
        TransferError, match=r"ws/blocker/one \(from site-a:.*/one\): .*workstation"
    ):
        blocked.result(timeout=30)
    fine.result(timeout=30)
    assert (tmp_path / "ws/two").read_bytes() == b"two" * 100_000


def test_an_unreachable_site_fails_every_file(tmp_path: Path) -> None:
    @dataclass(frozen=True)
    class Unreachable(SSHTarget):
        def argv(self, *args: str, multiplex: bool = True) -> list[str]:
            return ["sh", "-c", "echo 'ssh: connect to host login: No route to host' >&2; exit 255"]

    site = SiteFiles("site-b", Unreachable("login"), "/nowhere/files")
    with pytest.raises(TransferError, match=r"to site-b: ssh failed: .*No route to host"):
        site.put([workstation_file(tmp_path, "x", b"x")]).result(timeout=30)
    with pytest.raises(TransferError, match=r"from site-b:/nowhere/x\): ssh failed: "):
        site.get([Fetch("/nowhere/x", tmp_path / "x")]).result(timeout=30)


def test_a_changed_file_is_sent_again_an_unchanged_one_not(site: SiteFiles, tmp_path: Path) -> None:
    path = workstation_file(tmp_path, "f", b"one")
    (first,) = site.put([path]).result(timeout=30)
    assert site.put([path]).result(timeout=30) == [first] and site.bytes_sent == 3
    path.write_bytes(b"three")
    os.utime(path, ns=(1, 1))
    (second,) = site.put([path]).result(timeout=30)
    assert second != first and Path(second).read_bytes() == b"three" and site.bytes_sent == 8


@pytest.mark.parametrize(
    ("name", "safe"),
    [("a.csv", "a.csv"), ("a b;$(x)", "a_b___x_"), ("..", "_"), ("", "_"), ("é.txt", "_.txt")],
)
def test_site_names_need_no_quoting(name: str, safe: str) -> None:
    assert contents.safe_name(name) == safe


def test_the_store_sits_beside_the_runs_executor_directories() -> None:
    assert files.store_dir("/home/u/.pwrun/runs/r1/map") == "/home/u/.pwrun/runs/r1/files"


@pytest.fixture
def large(monkeypatch: pytest.MonkeyPatch) -> int:
    """Files from 1,000 bytes go by (a stand-in for) scp."""
    monkeypatch.setattr(files, "LARGE", 1000)
    return 1000


def test_large_files_go_by_copy_keyed_and_renamed_small_ones_batched(
    site: SiteFiles, tmp_path: Path, round_trips: list[list[str]], large: int
) -> None:
    big = workstation_file(tmp_path, "big.bin", os.urandom(5 * large))
    small = workstation_file(tmp_path, "small.txt", b"small")
    paths = site.put([big, small]).result(timeout=30)
    assert [Path(p).read_bytes() for p in paths] == [big.read_bytes(), b"small"]
    assert Path(paths[0]).parent.name == hashlib.sha256(big.read_bytes()).hexdigest()[:32]
    assert [argv[0] for argv in round_trips] == ["sh", "cp"]  # the batch, a copy meanwhile
    assert sorted(os.listdir(site.store)) == ["inputs", "objects"]  # no incoming left
    back = tmp_path / "ws" / "back" / "big.bin"
    log = workstation_file(tmp_path, "log", b"before\n")
    site.get([Fetch(paths[0], back), Fetch(paths[0], log, append=True)]).result(timeout=30)
    assert (
        back.read_bytes() == big.read_bytes() and log.read_bytes() == b"before\n" + big.read_bytes()
    )
    assert site.bytes_received == 10 * large and not list((tmp_path / "ws").rglob("*.part"))


def test_a_failed_large_copy_names_file_site_and_cause_and_leaves_nothing(
    tmp_path: Path, large: int
) -> None:
    @dataclass(frozen=True)
    class Full(LocalShell):
        def copy_argv(self) -> list[str]:
            return ["sh", "-c", "echo 'scp: write: No space left on device' >&2; exit 1", "scp"]

    site = SiteFiles("site-a", Full("login"), str(tmp_path / "site" / "files"))
    big = workstation_file(tmp_path, "big.bin", bytes(2 * large))
    with pytest.raises(TransferError) as failed:
        site.put([big]).result(timeout=30)
    assert str(failed.value) == f"sending {big} to site-a: scp: write: No space left on device"
    assert os.listdir(site.store) == ["objects"] and not site.objects
    remote = tmp_path / "site" / "out.bin"
    remote.write_bytes(bytes(2 * large))
    with pytest.raises(TransferError, match=r"ws/out.bin \(from site-a:.*/out.bin\): scp: write"):
        site.get([Fetch(str(remote), tmp_path / "ws" / "out.bin")]).result(timeout=30)
    assert os.listdir(tmp_path / "ws") == ["big.bin"]


def test_scp_goes_through_the_shared_connection_with_the_same_checks() -> None:
    target = SSHTarget("10.0.0.2", "u", 2222, "/k", "/known", options=("ServerAliveInterval=5",))
    argv = target.copy_argv()
    assert argv[0] == "scp" and argv[argv.index("-P") + 1] == "2222" and "-p" not in argv
    options = {argv[i + 1] for i, word in enumerate(argv) if word == "-o"}
    assert {"StrictHostKeyChecking=yes", "BatchMode=yes", "UserKnownHostsFile=/known",
            "ServerAliveInterval=5", "ControlMaster=no",
            f"ControlPath={target.control_path}"} <= options  # fmt: skip
    assert not any(o.startswith("ControlPersist") for o in options)
    assert target.remote("/a b") == "u@10.0.0.2:/a b"
    assert SSHTarget("::1").remote("/x") == "[::1]:/x"
