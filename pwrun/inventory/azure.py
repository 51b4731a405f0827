"""Azure source: VMs tagged as controllers, in the subscriptions (and resource groups) listed.

Addresses come from the VMs' network interfaces and public IP addresses, listed in bulk
(azure-mgmt-network), not fetched one by one. Power state: one statusOnly listing per
subscription, or, when resource groups are named, each controller's instance view (a role
scoped to a resource group may not list the whole subscription).

Credentials: azure-identity's DefaultAzureCredential (environment, workload identity, managed
identity, Azure CLI...) or, with `auth: client_secret`, a service principal whose secret is read
from the environment variable `client_secret_env` or the file `client_secret_file`, never
from the inventory file itself.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from pwrun.errors import SourceError, first_line
from pwrun.inventory.cloud import CloudOptions, cluster_fields, run_each
from pwrun.inventory.model import (
    Cluster,
    Parsed,
    RawModel,
    RecordError,
    Source,
    plain,
    record_id,
    validate,
)
from pwrun.validation import ClusterName, UserName

KIND = "azure"


class Options(CloudOptions):
    """Options of the `azure` source."""

    subscriptions: list[str] = Field(min_length=1, description="Subscription ids to search.")
    resource_groups: list[str] = Field(
        default_factory=list, description="Only these resource groups; default: all of each."
    )
    auth: Literal["default", "client_secret"] = Field(
        "default", description="DefaultAzureCredential, or a service principal's secret."
    )
    tenant_id: str | None = Field(None, description="Tenant of the service principal.")
    client_id: str | None = Field(None, description="Application (client) id.")
    client_secret_env: str = Field(
        "AZURE_CLIENT_SECRET", description="Environment variable holding the client secret."
    )
    client_secret_file: Path | None = Field(
        None, description="File (mode 0600) holding the client secret; wins over the variable."
    )
    authority_host: str | None = Field(
        None, description="Entra ID authority, for sovereign clouds, private endpoints, tests."
    )
    ca_bundle: Path | None = Field(
        None, description="CA certificates to trust for the API and authority (private TLS)."
    )

    @model_validator(mode="after")
    def _service_principal_named(self) -> Options:
        if self.auth == "client_secret":
            missing = [name for name in ("tenant_id", "client_id") if not getattr(self, name)]
            if missing:
                raise ValueError(f"auth client_secret needs {' and '.join(missing)}")
        return self


class _Ref(RawModel):
    id: str


class _OsProfile(RawModel):
    adminUsername: UserName | None = None


class _NetworkProfile(RawModel):
    networkInterfaces: list[_Ref] = Field(default_factory=list)


class _VmProperties(RawModel):
    osProfile: _OsProfile = Field(default_factory=_OsProfile)
    networkProfile: _NetworkProfile = Field(default_factory=_NetworkProfile)


class _Vm(RawModel):
    id: str
    name: ClusterName
    location: str
    zones: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)
    properties: _VmProperties = Field(default_factory=_VmProperties)


class _Nic(RawModel):
    private: str | None = None
    public_ip: str | None = None


class _Subscription(RawModel):
    vms: list[Any]
    power: dict[str, str]
    nics: dict[str, _Nic]
    public_ips: dict[str, str]


class AzureSource(Source[Options]):
    """Controllers from virtual_machines.list_all / list, with their NICs and public IPs."""

    kind: ClassVar[str] = KIND

    def fetch(self) -> dict[str, dict[str, Any]]:
        """{subscription: {vms, power, nics, public_ips}} for the tagged VMs."""
        credential = self._credential()
        try:
            found = run_each(self.options.subscriptions, lambda s: self._fetch_sub(credential, s))
        finally:
            credential.close()
        return dict(zip(self.options.subscriptions, found, strict=True))

    def _credential(self) -> Any:
        """A ClientSecretCredential or DefaultAzureCredential, as the options say."""
        from azure.identity import (  # SDKs are imported here: parsing cached data skips them
            ClientSecretCredential,
            DefaultAzureCredential,
        )

        options = self.options
        common: dict[str, Any] = {
            "connection_timeout": options.timeout,
            "read_timeout": options.timeout,
            "retry_total": options.retries,
        }
        if options.authority_host:
            common |= {"authority": options.authority_host, "disable_instance_discovery": True}
        if options.ca_bundle:
            common["connection_verify"] = str(options.ca_bundle)
        if options.auth == "default":
            return DefaultAzureCredential(**common)
        return ClientSecretCredential(
            options.tenant_id, options.client_id, self._client_secret(), **common
        )

    def _client_secret(self) -> str:
        path = self.options.client_secret_file
        if path is not None:
            try:
                secret = path.expanduser().read_text().strip()
            except OSError as exc:
                raise SourceError(
                    KIND, f"option 'client_secret_file': cannot read {path}: {exc.strerror}"
                ) from None
            if not secret:
                raise SourceError(KIND, f"option 'client_secret_file': {path} is empty")
            return secret
        secret = os.environ.get(self.options.client_secret_env, "").strip()
        if not secret:
            raise SourceError(
                KIND,
                f"option 'client_secret_env': environment variable "
                f"{self.options.client_secret_env} is not set (or set 'client_secret_file')",
            )
        return secret

    def _fetch_sub(self, credential: Any, subscription: str) -> dict[str, Any]:
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
        )
        from azure.mgmt.compute import ComputeManagementClient
        from azure.mgmt.network import NetworkManagementClient

        where = f"subscription {subscription}"
        options = self.options
        transport: dict[str, Any] = {
            "connection_timeout": options.timeout,
            "read_timeout": options.timeout,
            "retry_total": options.retries,
            "retry_backoff_factor": 0.2,
            "retry_backoff_max": 2,
        }
        if options.ca_bundle:
            transport["connection_verify"] = str(options.ca_bundle)
        base_url = options.endpoint_url
        try:
            compute = ComputeManagementClient(credential, subscription, base_url, **transport)
            network = NetworkManagementClient(credential, subscription, base_url, **transport)
            with compute, network:
                return self._list(compute, network, where)
        except ClientAuthenticationError as exc:
            message = re.sub(r"^authentication failed:\s*", "", first_line(exc), flags=re.I)
            raise SourceError(KIND, f"{where}: authentication failed: {message}") from None
        except HttpResponseError as exc:
            if exc.status_code is None or exc.status_code == 200:  # an unreadable 200 answer
                raise SourceError(
                    KIND, f"{where}: malformed API answer: {first_line(exc)}"
                ) from None
            raise SourceError(KIND, f"{where}: {exc.status_code} {first_line(exc)}") from None
        except ServiceResponseError as exc:
            raise SourceError(
                KIND,
                f"{where}: no usable answer within {options.timeout:g} s ('timeout'): "
                f"{first_line(exc)}",
            ) from None
        except ServiceRequestError as exc:
            raise SourceError(KIND, f"{where}: cannot reach the API: {first_line(exc)}") from None

    def _list(self, compute: Any, network: Any, where: str) -> dict[str, Any]:
        groups = self.options.resource_groups
        vms, nics, public_ips = [], [], []
        if groups:
            for group in groups:
                vms += compute.virtual_machines.list(group)
                nics += network.network_interfaces.list(group)
                public_ips += network.public_ip_addresses.list(group)
        else:
            vms = list(compute.virtual_machines.list_all())
            nics = list(network.network_interfaces.list_all())
            public_ips = list(network.public_ip_addresses.list_all())
        controllers = [vm for vm in vms if self._is_controller(vm.tags)]
        if groups:
            views = run_each(controllers, lambda vm: self._instance_view(compute, vm))
            power = {vm.id: _power(view) for vm, view in zip(controllers, views, strict=True)}
        else:
            power = {
                vm.id: _power(vm.properties.instance_view if vm.properties else None)
                for vm in compute.virtual_machines.list_all(status_only="true")
            }
        wanted_nics = {
            ref.id.lower()
            for vm in controllers
            if vm.properties and vm.properties.network_profile
            for ref in vm.properties.network_profile.network_interfaces or []
        }
        kept_nics = {nic.id.lower(): _nic(nic) for nic in nics if nic.id.lower() in wanted_nics}
        wanted_ips = {nic["public_ip"] for nic in kept_nics.values() if nic["public_ip"]}
        return {
            "vms": [_vm(vm) for vm in controllers],
            "power": {vm.id.lower(): power.get(vm.id, "unknown") for vm in controllers},
            "nics": kept_nics,
            "public_ips": {
                ip.id.lower(): ip.properties.ip_address
                for ip in public_ips
                if ip.id.lower() in wanted_ips and ip.properties and ip.properties.ip_address
            },
        }

    def _is_controller(self, tags: dict[str, str] | None) -> bool:
        return (tags or {}).get(self.options.tag_key) == self.options.tag_value

    @staticmethod
    def _instance_view(compute: Any, vm: Any) -> Any:
        group = vm.id.split("/")[4]
        return compute.virtual_machines.instance_view(group, vm.name)

    def parse(self, raw: Any) -> Parsed:
        if not isinstance(raw, dict):
            raise SourceError(
                KIND, "cached data is not a mapping of subscriptions; flush the cache"
            )
        parsed = Parsed(KIND)
        for subscription, data in raw.items():
            where = f"subscription {plain(subscription)}"
            try:
                sub = validate(_Subscription, data)
            except RecordError as exc:
                raise SourceError(KIND, f"{where}: {exc}") from None
            for index, vm_data in enumerate(sub.vms):
                vm_where = f"{where} vm {record_id(vm_data, 'name', index)}"
                parsed.add(vm_where, functools.partial(self._cluster, sub, vm_data))
        return parsed

    def _cluster(self, sub: _Subscription, data: Any) -> Cluster | None:
        vm = validate(_Vm, data)
        if not self._is_controller(vm.tags):
            return None
        refs = vm.properties.networkProfile.networkInterfaces
        nic = sub.nics.get(refs[0].id.lower()) if refs else None
        nic = nic or _Nic()
        default_user = self.options.user or vm.properties.osProfile.adminUsername
        return Cluster(
            name=vm.name,
            source=KIND,
            cloud=KIND,
            public_address=sub.public_ips.get(nic.public_ip or ""),
            private_address=nic.private,
            status="on" if sub.power.get(vm.id.lower()) == "running" else "off",
            region=vm.location,
            zone=f"{vm.location}-{vm.zones[0]}" if vm.zones else None,
            tags=vm.tags,
            **cluster_fields(vm.tags, default_user),
        )


def _power(view: Any) -> str:
    """`running`, `deallocated`... from an instance view's PowerState/* status."""
    for status in (view.statuses or []) if view else []:
        if status.code and status.code.startswith("PowerState/"):
            return status.code.removeprefix("PowerState/")
    return "unknown"


def _vm(vm: Any) -> dict[str, Any]:
    """The part of a VM that is kept (and cached), in the API's JSON names."""
    data = vm.as_dict()
    properties = data.get("properties") or {}
    return {
        "id": data.get("id"),
        "name": data.get("name"),
        "location": data.get("location"),
        "zones": data.get("zones") or [],
        "tags": data.get("tags") or {},
        "properties": {
            "osProfile": {
                "adminUsername": (properties.get("osProfile") or {}).get("adminUsername")
            },
            "networkProfile": properties.get("networkProfile") or {},
        },
    }


def _nic(nic: Any) -> dict[str, str | None]:
    """The primary IP configuration of a NIC: private address and public IP resource id."""
    configs = (nic.properties.ip_configurations or []) if nic.properties else []
    primary = next((c for c in configs if c.properties and c.properties.primary), None)
    config = primary or (configs[0] if configs else None)
    props = config.properties if config else None
    public = props.public_ip_address.id if props and props.public_ip_address else None
    return {
        "private": props.private_ip_address if props else None,
        "public_ip": public.lower() if public else None,
    }
