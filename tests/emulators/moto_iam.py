"""The account of a running moto server: IAM users whose keys sign requests, and moto's switch
that makes unsigned or unknown-key requests fail as AWS's do."""

from __future__ import annotations

import json
from typing import Any

import boto3
import requests

ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
SEED = {"aws_access_key_id": "AKIASEEDSEEDSEEDSEED", "aws_secret_access_key": "seed"}


class MotoAccount:
    """Mixed into an emulator whose `url` is a moto server; `credentials` sign its requests."""

    credentials: dict[str, str]

    @property
    def url(self) -> str:
        raise NotImplementedError

    def open_account(self, user: str) -> None:
        """Reset the server, add `user` (allowed everything) and enforce signatures from now on."""
        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()
        self.credentials = SEED
        self.credentials = self.add_user(user, ALLOW_ALL)
        self.require_signatures(True)

    def require_signatures(self, on: bool) -> None:
        count = "0" if on else "inf"
        requests.post(f"{self.url}/moto-api/reset-auth", data=count, timeout=10).raise_for_status()

    def add_user(self, name: str, policy: dict[str, Any]) -> dict[str, str]:
        """An IAM user with an inline `policy`: its key as boto3 client arguments."""
        iam = self.client("iam", "us-east-1")
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="policy", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return {
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
        }

    def client(self, service: str, region: str) -> Any:
        return boto3.client(service, region_name=region, endpoint_url=self.url, **self.credentials)

    def environment(self) -> dict[str, str]:
        """Variables that make boto3's default chain use the emulator's key (and nothing else)."""
        return {
            "AWS_ACCESS_KEY_ID": self.credentials["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": self.credentials["aws_secret_access_key"],
            "AWS_EC2_METADATA_DISABLED": "true",
        }
