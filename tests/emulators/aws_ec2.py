"""EC2 for tests: moto's server on 127.0.0.1, seeded with boto3, with IAM auth switched on.

Requests must be signed with the access key `Ec2Emulator.credentials` (an IAM user of the
emulated account): any other key gets EC2's real AuthFailure answer.

    with Ec2Emulator() as emu:
        emu.add_instances("us-east-1", 500)                      # controllers
        emu.add_instances("us-east-1", 100, controller=False)    # noise
        env = emu.environment()   # AWS_* variables for boto3's default chain
"""

from __future__ import annotations

import logging
from typing import Any

from moto.server import ThreadedMotoServer

from tests.emulators.moto_iam import MotoAccount

AMI = "ami-12c6146b"  # an image moto knows in every region


class Ec2Emulator(MotoAccount):
    """moto's threaded server; the default account holds an IAM user whose key signs requests."""

    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)

    def __enter__(self) -> Ec2Emulator:
        self.server.start()
        self.open_account("pwrun-inventory")
        return self

    def __exit__(self, *exc: object) -> None:
        self.require_signatures(False)  # moto's switch is per process: leave it as found
        self.server.stop()

    @property
    def url(self) -> str:
        host, port = self.server.get_host_and_port()
        return f"http://{host}:{port}"

    def add_instances(
        self,
        region: str,
        count: int,
        *,
        controller: bool = True,
        tags: dict[str, str] | None = None,
        per_reservation: int = 5,
    ) -> list[dict[str, Any]]:
        """Launch `count` running instances, `per_reservation` per RunInstances call."""
        all_tags = {"pwrun-role": "controller"} if controller else {"role": "compute"}
        all_tags.update(tags or {})
        spec = [
            {
                "ResourceType": "instance",
                "Tags": [{"Key": k, "Value": v} for k, v in all_tags.items()],
            }
        ]
        ec2 = self.client("ec2", region)
        made: list[dict[str, Any]] = []
        while len(made) < count:
            n = min(per_reservation, count - len(made))
            made += ec2.run_instances(ImageId=AMI, MinCount=n, MaxCount=n, TagSpecifications=spec)[
                "Instances"
            ]
        return made
