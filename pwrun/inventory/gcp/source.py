"""`GcpSource`: the labelled instances of every project and zone (fetch), and their clusters
(parse)."""

from __future__ import annotations

import functools
from typing import Any, ClassVar

from pwrun.inventory.gcp import records
from pwrun.inventory.gcp.client import labelled_instances
from pwrun.inventory.gcp.options import KIND, Options, error
from pwrun.inventory.model import Parsed, Source, plain, record_id


class GcpSource(Source[Options]):
    """Controllers from instances.list, one call series per project and zone."""

    kind: ClassVar[str] = KIND

    def fetch(self) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """{project: {zone: [instance, ...]}} for the labelled instances."""
        return labelled_instances(self.options)

    def parse(self, raw: Any) -> Parsed:
        if not isinstance(raw, dict):
            raise error("cached data is not a mapping of projects; flush the cache")
        parsed = Parsed(KIND)
        for project, zones in raw.items():
            if not isinstance(zones, dict):
                raise error(f"project {plain(project)}: zones are not a mapping")
            for zone, instances in zones.items():
                place = f"project {plain(project)} zone {plain(zone)}"
                if not isinstance(instances, list):
                    raise error(f"{place}: instances are not a list")
                for index, data in enumerate(instances):
                    where = f"{place} instance {record_id(data, 'name', index)}"
                    parsed.add(where, functools.partial(records.cluster, zone, data, self.options))
        return parsed
