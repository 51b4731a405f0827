"""EC2 for tests: moto's server on 127.0.0.1, seeded with boto3, with IAM auth switched on.

Requests must be signed with the access key `Ec2Emulator.credentials` (an IAM user of the
emulated account): any other key gets EC2's real AuthFailure answer.

    with Ec2Emulator() as emu:
        emu.add_instances("us-east-1", 500)                      # controllers
        emu.add_instances("us-east-1", 100, controller=False)    # noise
        env = emu.environment()   # AWS_* variables for boto3's default chain
"""

from __future__ import annotations

import json
import logging
from typing import Any

import boto3
import requests
from moto.server import ThreadedMotoServer

AMI = "ami-12c6146b"  # an image moto knows in every region
POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


class Ec2Emulator:
    """moto's threaded server; the default account holds an IAM user whose key signs requests."""

    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.credentials: dict[str, str] = {}

    def __enter__(self) -> Ec2Emulator:
        self.server.start()
        requests.post(f"{self.url}/moto-api/reset", timeout=10)
        iam = boto3.client(
            "iam",
            region_name="us-east-1",
            endpoint_url=self.url,
            aws_access_key_id="AKIASEEDSEEDSEEDSEED",
            aws_secret_access_key="seed",
        )
        iam.create_user(UserName="pwrun-inventory")
        iam.put_user_policy(
            UserName="pwrun-inventory", PolicyName="all", PolicyDocument=json.dumps(POLICY)
        )
        key = iam.create_access_key(UserName="pwrun-inventory")["AccessKey"]
        self.credentials = {
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
        }
        self._set_auth("0")  # from now on, every request must be signed by a known key
        return self

    def __exit__(self, *exc: object) -> None:
        self._set_auth("inf")
        self.server.stop()

    def _set_auth(self, count: str) -> None:
        requests.post(f"{self.url}/moto-api/reset-auth", data=count, timeout=10).raise_for_status()

    @property
    def url(self) -> str:
        host, port = self.server.get_host_and_port()
        return f"http://{host}:{port}"

    def environment(self) -> dict[str, str]:
        """Variables that make boto3's default chain use the emulator's key (and nothing else)."""
        return {
            "AWS_ACCESS_KEY_ID": self.credentials["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": self.credentials["aws_secret_access_key"],
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self, region: str) -> Any:
        return boto3.client("ec2", region_name=region, endpoint_url=self.url, **self.credentials)

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
        ec2 = self.client(region)
        made: list[dict[str, Any]] = []
        while len(made) < count:
            n = min(per_reservation, count - len(made))
            made += ec2.run_instances(ImageId=AMI, MinCount=n, MaxCount=n, TagSpecifications=spec)[
                "Instances"
            ]
        return made
