"""`AwsSource`: the tagged instances of every region (fetch), and their clusters (parse)."""

from __future__ import annotations

import functools
from typing import Any, ClassVar

from pwrun.inventory.aws import records
from pwrun.inventory.aws.client import tagged_instances
from pwrun.inventory.aws.options import KIND, Options, error
from pwrun.inventory.model import Parsed, Source, plain, record_id


class AwsSource(Source[Options]):
    """Controllers from EC2's DescribeInstances."""

    kind: ClassVar[str] = KIND

    def fetch(self) -> dict[str, list[dict[str, Any]]]:
        """{region: [instance, ...]} for the tagged instances of every listed region."""
        return tagged_instances(self.options)

    def parse(self, raw: Any) -> Parsed:
        if not isinstance(raw, dict):
            raise error("cached data is not a mapping of regions; flush the cache")
        parsed = Parsed(KIND)
        for region, instances in raw.items():
            if not isinstance(instances, list):
                raise error(f"region {plain(region)}: instances are not a list")
            for index, data in enumerate(instances):
                where = f"region {plain(region)} instance {record_id(data, 'InstanceId', index)}"
                parsed.add(where, functools.partial(records.cluster, region, data, self.options))
        return parsed
