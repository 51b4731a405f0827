"""A run's objects on the workstation: s3:// and gs:// inputs fetched once per URL, and outputs
held in a temporary file until they are published.

Tasks on sites never see a credential: objects are read and written here, with the SDKs'
credential chains, and move to and from sites as workstation files do. The cache is private to
the user and removed when the run's executors shut down.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from pwrun.data.objects import fetch, parse, publish
from pwrun.errors import ObjectStoreError
from pwrun.transport.contents import key_of, safe_name

WORKERS = 8  # objects moved at once
OBJECTS_DIR = "objects"  # in the run's workstation directory


def object_name(url: str) -> str:
    """The file name an object gets on the workstation and on sites: its key's last part."""
    return safe_name(PurePosixPath(parse(url).key).name)


def at_site(exc: ObjectStoreError, role: str, site: str) -> ObjectStoreError:
    """`exc` saying which site the object was for: `URL: input for SITE: CAUSE`."""
    return ObjectStoreError(exc.url, f"{role} {site}: {str(exc).removeprefix(exc.url + ': ')}")


class ObjectCache:
    """Object inputs fetched into `directory` (once per URL) and object outputs published from
    it, in a few threads; each call answers with a Future."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.fetched: dict[str, Future[Path]] = {}
        self.lock = threading.RLock()  # a done future's callback runs in the caller's thread
        self.pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="pwrun-objects")

    def local(self, url: str) -> Future[Path]:
        """The workstation copy of `url`. A failed fetch is forgotten, so a retry fetches again."""
        with self.lock:
            if url not in self.fetched:
                into = self.directory / "in" / key_of(hashlib.sha256(url.encode()))
                self.fetched[url] = future = self.pool.submit(self._fetch, url, into)
                future.add_done_callback(lambda done: self._forget_failed(url, done))
            return self.fetched[url]

    def publish(self, path: Path, url: str) -> Future[None]:
        """Upload `path` to `url`, then remove `path`."""
        return self.pool.submit(self._publish, path, url)

    def close(self) -> None:
        """Stop taking work and remove the cache (idempotent)."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self.directory, ignore_errors=True)

    def _fetch(self, url: str, into: Path) -> Path:
        into.mkdir(mode=0o700, parents=True, exist_ok=True)
        return fetch(url, into / object_name(url))

    def _publish(self, path: Path, url: str) -> None:
        try:
            publish(path, url)
        finally:
            with contextlib.suppress(OSError):
                path.unlink()

    def _forget_failed(self, url: str, done: Future[Path]) -> None:
        if done.exception() is not None:
            with self.lock:
                if self.fetched.get(url) is done:
                    del self.fetched[url]
