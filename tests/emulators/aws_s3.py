"""S3 for tests: moto's server in a child process on 127.0.0.1, with IAM auth switched on.

Requests must be signed with the key of an IAM user of the emulated account (`credentials`, or
one from `add_user`); any other key gets S3's real answer. The child ends when the emulator
does, or when the test process dies (it waits for its stdin to close).

    with S3Emulator() as emu:
        emu.client("s3", "us-east-1").create_bucket(Bucket="data")
        env = emu.environment() | {"AWS_ENDPOINT_URL": emu.url}   # boto3's default chain
"""

from __future__ import annotations

import subprocess
import sys

from tests.emulators.moto_iam import MotoAccount

CHILD = """
import logging, sys
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
"""


class S3Emulator(MotoAccount):
    """moto's server for S3 in its own process: its work does not slow the tests' clients."""

    def __enter__(self) -> S3Emulator:
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        port = self.process.stdout.readline().strip()
        if not port.isdigit():
            self.__exit__()
            raise RuntimeError("moto's server did not start")
        self._url = f"http://127.0.0.1:{port}"
        self.open_account("pwrun-data")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    @property
    def url(self) -> str:
        return self._url
