"""`AzureSource`: the tagged VMs of every subscription (fetch), and their clusters (parse)."""

from __future__ import annotations

import functools
from typing import Any, ClassVar

from pwrun.inventory.azure import records
from pwrun.inventory.azure.client import tagged_vms
from pwrun.inventory.azure.options import KIND, Options, error
from pwrun.inventory.model import Parsed, RecordError, Source, plain, record_id, validate


class AzureSource(Source[Options]):
    """Controllers from virtual_machines.list_all / list, with their NICs and public IPs."""

    kind: ClassVar[str] = KIND

    def fetch(self) -> dict[str, dict[str, Any]]:
        """{subscription: {vms, power, nics, public_ips}} for the tagged VMs."""
        return tagged_vms(self.options)

    def parse(self, raw: Any) -> Parsed:
        if not isinstance(raw, dict):
            raise error("cached data is not a mapping of subscriptions; flush the cache")
        parsed = Parsed(KIND)
        for subscription, data in raw.items():
            where = f"subscription {plain(subscription)}"
            try:
                sub = validate(records.Subscription, data)
            except RecordError as exc:
                raise error(f"{where}: {exc}") from None
            for index, vm_data in enumerate(sub.vms):
                vm_where = f"{where} vm {record_id(vm_data, 'name', index)}"
                parsed.add(vm_where, functools.partial(records.cluster, sub, vm_data, self.options))
        return parsed
