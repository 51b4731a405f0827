"""AWS source: EC2 instances tagged as controllers, in the regions the user lists.

Credentials come from boto3's usual chain (environment, shared files, SSO, instance role) or
the named `profile`. Only the tagged instances are asked for (a server-side tag filter).
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

from pydantic import Field

from pwrun.errors import SourceError, first_line
from pwrun.inventory.cloud import CloudOptions, cluster_fields, run_each
from pwrun.inventory.model import (
    Cluster,
    Parsed,
    RawModel,
    Source,
    checked,
    plain,
    record_id,
    validate,
)
from pwrun.validation import IPAddress, cluster_name

KIND = "aws"
# The part of each DescribeInstances result that is kept (and cached).
KEPT_FIELDS = (
    "InstanceId",
    "State",
    "PrivateIpAddress",
    "PublicIpAddress",
    "Placement",
    "Tags",
)
GONE_STATES = ("shutting-down", "terminated")


class Options(CloudOptions):
    """Options of the `aws` source."""

    regions: list[str] = Field(
        min_length=1, description="Regions to search, e.g. [us-east-1]; none is searched unasked."
    )
    profile: str | None = Field(None, description="Named profile; default: boto3's chain.")
    page_size: int = Field(1000, ge=5, le=1000, description="MaxResults per DescribeInstances.")


class _Tag(RawModel):
    Key: str
    Value: str


class _State(RawModel):
    Name: str


class _Placement(RawModel):
    AvailabilityZone: str | None = None


class _Instance(RawModel):
    InstanceId: str
    State: _State
    PrivateIpAddress: IPAddress | None = None
    PublicIpAddress: IPAddress | None = None
    Placement: _Placement = _Placement()
    Tags: list[_Tag] = Field(default_factory=list)


class AwsSource(Source[Options]):
    """Controllers from EC2's DescribeInstances."""

    kind: ClassVar[str] = KIND

    def fetch(self) -> dict[str, list[dict[str, Any]]]:
        """{region: [instance, ...]} for the tagged instances of every listed region."""
        import boto3  # SDKs are imported here: parsing cached data does not need them
        import botocore.config
        import botocore.exceptions

        try:
            session = boto3.Session(profile_name=self.options.profile)
        except botocore.exceptions.ProfileNotFound:
            raise SourceError(
                KIND, f"option 'profile': no AWS profile named {self.options.profile!r}"
            ) from None
        config = botocore.config.Config(
            connect_timeout=self.options.timeout,
            read_timeout=self.options.timeout,
            retries={"mode": "standard", "total_max_attempts": self.options.retries + 1},
        )
        try:
            clients = {
                region: session.client(
                    "ec2", region_name=region, endpoint_url=self.options.endpoint_url, config=config
                )
                for region in self.options.regions
            }
        except (botocore.exceptions.BotoCoreError, ValueError) as exc:
            raise SourceError(
                KIND, f"option 'regions' or 'endpoint_url': {first_line(exc)}"
            ) from None
        pages = run_each(clients.items(), self._fetch_region)
        return dict(zip(clients, pages, strict=True))

    def _fetch_region(self, region_client: tuple[str, Any]) -> list[dict[str, Any]]:
        import botocore.exceptions
        import botocore.parsers

        region, client = region_client
        paginator = client.get_paginator("describe_instances")
        tag_filter = {"Name": f"tag:{self.options.tag_key}", "Values": [self.options.tag_value]}
        instances = []
        try:
            for page in paginator.paginate(
                Filters=[tag_filter], PaginationConfig={"PageSize": self.options.page_size}
            ):
                for reservation in page.get("Reservations", []):
                    for instance in reservation.get("Instances", []):
                        instances.append({k: instance[k] for k in KEPT_FIELDS if k in instance})
        except botocore.exceptions.NoCredentialsError:
            raise SourceError(
                KIND,
                "no AWS credentials found (environment, shared credentials file, SSO, instance "
                "role); set them up or name a 'profile'",
            ) from None
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            raise SourceError(
                KIND,
                f"region {region}: {error.get('Code', 'error')}: {error.get('Message', '')}",
            ) from None
        except (botocore.exceptions.ConnectTimeoutError, botocore.exceptions.ReadTimeoutError):
            raise SourceError(
                KIND, f"region {region}: no answer within {self.options.timeout:g} s ('timeout')"
            ) from None
        except botocore.parsers.ResponseParserError as exc:
            message = first_line(exc).rstrip(":")
            raise SourceError(KIND, f"region {region}: malformed API answer: {message}") from None
        except botocore.exceptions.BotoCoreError as exc:
            raise SourceError(KIND, f"region {region}: {first_line(exc)}") from None
        return instances

    def parse(self, raw: Any) -> Parsed:
        if not isinstance(raw, dict):
            raise SourceError(KIND, "cached data is not a mapping of regions; flush the cache")
        parsed = Parsed(KIND)
        for region, instances in raw.items():
            if not isinstance(instances, list):
                raise SourceError(KIND, f"region {plain(region)}: instances are not a list")
            for index, data in enumerate(instances):
                where = f"region {plain(region)} instance {record_id(data, 'InstanceId', index)}"
                parsed.add(where, functools.partial(self._cluster, region, data))
        return parsed

    def _cluster(self, region: str, data: Any) -> Cluster | None:
        instance = validate(_Instance, data)
        tags = {tag.Key: tag.Value for tag in instance.Tags}
        if tags.get(self.options.tag_key) != self.options.tag_value:
            return None
        if instance.State.Name in GONE_STATES:
            return None
        named = "tag 'Name'" if tags.get("Name") else "field 'InstanceId'"
        return Cluster(
            name=checked(named, cluster_name, tags.get("Name") or instance.InstanceId),
            source=KIND,
            cloud=KIND,
            public_address=instance.PublicIpAddress,
            private_address=instance.PrivateIpAddress,
            status="on" if instance.State.Name == "running" else "off",
            region=region,
            zone=instance.Placement.AvailabilityZone,
            tags=tags,
            **cluster_fields(tags, self.options.user),
        )
