"""A local emulator of Azure Resource Manager (VMs, NICs, public IPs) and Entra ID's token endpoint.

It speaks HTTPS (a self-signed certificate made at start; `emu.ca_file` is the CA to trust),
because azure-core refuses to send bearer tokens over plain HTTP. The real azure-identity
ClientSecretCredential gets its token from the emulated authority (OpenID discovery, then the
client-credentials grant) and the real azure-mgmt-compute / azure-mgmt-network clients list
with nextLink paging.

    with AzureArmEmulator(tmp_dir) as emu:
        emu.register_app(TENANT, CLIENT_ID, SECRET)
        emu.add_vms(SUBSCRIPTION, "hpc-rg", "eastus", 500)                 # controllers
        emu.add_vms(SUBSCRIPTION, "hpc-rg", "eastus", 100, controller=False)
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.emulators.cloud_http import ApiError, JsonServer, Reply, Request, Served, TlsFiles

ARM_SCOPE = "https://management.azure.com/.default"
SUB = r"/subscriptions/(?P<sub>[^/]+)"
RG = r"(?:/resourceGroups/(?P<rg>[^/]+))?"


def _arm_error(status: int, code: str, message: str) -> ApiError:
    return ApiError(status, {"error": {"code": code, "message": message}})


@dataclass
class Subscription:
    vms: list[dict[str, Any]] = field(default_factory=list)
    nics: list[dict[str, Any]] = field(default_factory=list)
    public_ips: list[dict[str, Any]] = field(default_factory=list)
    power: dict[str, str] = field(default_factory=dict)  # vm id -> running, deallocated...
    groups: set[str] = field(default_factory=set)


class AzureArmEmulator(Served):
    """ARM list APIs with api-version checks, nextLink paging, and real bearer-token checks."""

    def __init__(self, directory: Path, page_size: int = 100) -> None:
        self.tls = TlsFiles.create(directory)
        self.server = JsonServer(tls=self.tls)
        self.page_size = page_size
        self.subscriptions: dict[str, Subscription] = {}
        self.apps: dict[tuple[str, str], str] = {}  # (tenant, client id) -> secret
        self.tokens: dict[str, float] = {}  # access token -> expiry
        self._serial = itertools.count(1)
        route = self.server.route
        route("GET", r"/(?P<tenant>[^/]+)/v2\.0/\.well-known/openid-configuration", self._openid)
        route("POST", r"/(?P<tenant>[^/]+)/oauth2/v2\.0/token", self._token)
        route("GET", SUB + RG + r"/providers/Microsoft\.Compute/virtualMachines", self._vms)
        route(
            "GET",
            SUB + RG + r"/providers/Microsoft\.Compute/virtualMachines/(?P<vm>[^/]+)/instanceView",
            self._instance_view,
        )
        route("GET", SUB + RG + r"/providers/Microsoft\.Network/networkInterfaces", self._nics)
        route("GET", SUB + RG + r"/providers/Microsoft\.Network/publicIPAddresses", self._pips)

    @property
    def ca_file(self) -> Path:
        return self.tls.cert

    # --- test set-up -------------------------------------------------------------------------

    def register_app(self, tenant: str, client_id: str, secret: str) -> None:
        self.apps[(tenant, client_id)] = secret

    def add_vms(
        self,
        subscription: str,
        resource_group: str,
        location: str,
        count: int,
        *,
        controller: bool = True,
        power: str = "running",
        tags: dict[str, str] | None = None,
        public: bool = True,
        admin: str = "azureuser",
        prefix: str | None = None,
    ) -> list[dict[str, Any]]:
        """Add `count` VMs, each with a NIC (and a public IP unless `public` is false)."""
        sub = self.subscriptions.setdefault(subscription, Subscription())
        sub.groups.add(resource_group.lower())
        base = f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers"
        made = []
        for _ in range(count):
            n = next(self._serial)
            name = f"{prefix or ('ctl' if controller else 'node')}-{n}"
            nic_id = f"{base}/Microsoft.Network/networkInterfaces/{name}-nic"
            ip_config: dict[str, Any] = {
                "privateIPAddress": f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}",
                "privateIPAllocationMethod": "Dynamic",
                "privateIPAddressVersion": "IPv4",
                "subnet": {"id": f"{base}/Microsoft.Network/virtualNetworks/vnet/subnets/default"},
                "primary": True,
                "provisioningState": "Succeeded",
            }
            if public:
                pip_id = f"{base}/Microsoft.Network/publicIPAddresses/{name}-ip"
                ip_config["publicIPAddress"] = {"id": pip_id}
                sub.public_ips.append(
                    {
                        "id": pip_id,
                        "name": f"{name}-ip",
                        "type": "Microsoft.Network/publicIPAddresses",
                        "location": location,
                        "sku": {"name": "Standard", "tier": "Regional"},
                        "properties": {
                            "provisioningState": "Succeeded",
                            "ipAddress": f"20.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}",
                            "publicIPAddressVersion": "IPv4",
                            "publicIPAllocationMethod": "Static",
                            "idleTimeoutInMinutes": 4,
                            "ipConfiguration": {"id": f"{nic_id}/ipConfigurations/ipconfig1"},
                        },
                    }
                )
            vm_id = f"{base}/Microsoft.Compute/virtualMachines/{name}"
            sub.nics.append(
                {
                    "id": nic_id,
                    "name": f"{name}-nic",
                    "type": "Microsoft.Network/networkInterfaces",
                    "location": location,
                    "properties": {
                        "provisioningState": "Succeeded",
                        "ipConfigurations": [
                            {
                                "id": f"{nic_id}/ipConfigurations/ipconfig1",
                                "name": "ipconfig1",
                                "properties": ip_config,
                            }
                        ],
                        "macAddress": "00-0D-3A-00-00-00",
                        "primary": True,
                        "virtualMachine": {"id": vm_id},
                    },
                }
            )
            all_tags = {"pwrun-role": "controller"} if controller else {"role": "compute"}
            all_tags.update(tags or {})
            vm = {
                "id": vm_id,
                "name": name,
                "type": "Microsoft.Compute/virtualMachines",
                "location": location,
                "zones": ["1"],
                "tags": all_tags,
                "properties": {
                    "vmId": f"00000000-0000-0000-0000-{n:012d}",
                    "hardwareProfile": {"vmSize": "Standard_D4s_v5"},
                    "storageProfile": {
                        "imageReference": {
                            "publisher": "almalinux",
                            "offer": "almalinux-hpc",
                            "sku": "8_7-hpc-gen2",
                            "version": "latest",
                        },
                        "osDisk": {
                            "osType": "Linux",
                            "name": f"{name}-osdisk",
                            "createOption": "FromImage",
                            "diskSizeGB": 64,
                        },
                    },
                    "osProfile": {
                        "computerName": name,
                        "adminUsername": admin,
                        "linuxConfiguration": {"disablePasswordAuthentication": True},
                        "secrets": [],
                    },
                    "networkProfile": {
                        "networkInterfaces": [{"id": nic_id, "properties": {"primary": True}}]
                    },
                    "provisioningState": "Succeeded",
                },
            }
            sub.vms.append(vm)
            sub.power[vm_id] = power
            made.append(vm)
        return made

    # --- Entra ID ----------------------------------------------------------------------------

    def _openid(self, request: Request, match: re.Match[str]) -> Reply:
        base = f"{self.url}/{match['tenant']}"
        return (
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "issuer": f"{base}/v2.0",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "code id_token", "token id_token"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            },
            {},
        )

    def _token(self, request: Request, match: re.Match[str]) -> Reply:
        form = request.form()
        tenant, client_id = match["tenant"], form.get("client_id", "")
        if form.get("grant_type") != "client_credentials":
            return (
                400,
                _aad_error(
                    "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
                ),
                {},
            )
        if (tenant, client_id) not in self.apps:
            return (
                400,
                _aad_error(
                    "unauthorized_client",
                    700016,
                    f"Application with identifier "
                    f"'{client_id}' was not found in the directory '{tenant}'.",
                ),
                {},
            )
        if not secrets.compare_digest(
            form.get("client_secret", ""), self.apps[(tenant, client_id)]
        ):
            return (
                401,
                _aad_error(
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. "
                    "Ensure the secret being sent in the request is the client "
                    "secret value, not the client secret ID.",
                ),
                {},
            )
        if ARM_SCOPE not in form.get("scope", "").split():
            return (
                400,
                _aad_error(
                    "invalid_scope",
                    1002012,
                    f"The provided value for scope {form.get('scope')} is not valid.",
                ),
                {},
            )
        token = "eyJ0eXAiOiJKV1Qi." + secrets.token_urlsafe(32)
        self.tokens[token] = time.time() + 3599
        return (
            200,
            {
                "token_type": "Bearer",
                "expires_in": 3599,
                "ext_expires_in": 3599,
                "access_token": token,
            },
            {},
        )

    # --- ARM ---------------------------------------------------------------------------------

    def _scope(self, request: Request, match: re.Match[str]) -> tuple[Subscription, str | None]:
        token = request.bearer
        if token is None or self.tokens.get(token, 0) < time.time():
            code = "AuthenticationFailed" if token is None else "InvalidAuthenticationToken"
            raise ApiError(
                401,
                {"error": {"code": code, "message": "The access token is invalid."}},
                {
                    "WWW-Authenticate": f'Bearer authorization_uri="{self.url}/common", '
                    'error="invalid_token", error_description="The access token is invalid."'
                },
            )
        if "api-version" not in request.query:
            raise _arm_error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        sub = self.subscriptions.get(match["sub"])
        if sub is None:
            raise _arm_error(
                404,
                "SubscriptionNotFound",
                f"The subscription '{match['sub']}' could not be found.",
            )
        group = match["rg"]
        if group is not None and group.lower() not in sub.groups:
            raise _arm_error(
                404, "ResourceGroupNotFound", f"Resource group '{group}' could not be found."
            )
        return sub, group

    def _paged(self, request: Request, items: list[dict[str, Any]]) -> Reply:
        try:
            start = int(request.query.get("$skiptoken", "0"))
        except ValueError:
            raise _arm_error(400, "InvalidSkipToken", "The skip token is not valid.") from None
        body: dict[str, Any] = {"value": items[start : start + self.page_size]}
        if start + self.page_size < len(items):
            query = "&".join(
                f"{k}={quote(v, safe='')}" for k, v in request.query.items() if k != "$skiptoken"
            )
            body["nextLink"] = (
                f"{self.url}{request.path}?{query}&$skiptoken={start + self.page_size}"
            )
        return 200, body, {}

    @staticmethod
    def _in_group(items: list[dict[str, Any]], group: str | None) -> list[dict[str, Any]]:
        if group is None:
            return items
        marker = f"/resourcegroups/{group.lower()}/"
        return [item for item in items if marker in item["id"].lower()]

    def _vms(self, request: Request, match: re.Match[str]) -> Reply:
        sub, group = self._scope(request, match)
        vms = self._in_group(sub.vms, group)
        if request.query.get("statusOnly", "").lower() == "true":
            vms = [
                {
                    "id": vm["id"],
                    "name": vm["name"],
                    "type": vm["type"],
                    "location": vm["location"],
                    "properties": {"instanceView": _instance_view(sub.power[vm["id"]])},
                }
                for vm in vms
            ]
        return self._paged(request, vms)

    def _instance_view(self, request: Request, match: re.Match[str]) -> Reply:
        sub, group = self._scope(request, match)
        for vm in self._in_group(sub.vms, group):
            if vm["name"].lower() == match["vm"].lower():
                return 200, _instance_view(sub.power[vm["id"]]), {}
        raise _arm_error(
            404,
            "ResourceNotFound",
            f"The Resource 'Microsoft.Compute/"
            f"virtualMachines/{match['vm']}' under resource group '{group}' was not "
            "found.",
        )

    def _nics(self, request: Request, match: re.Match[str]) -> Reply:
        sub, group = self._scope(request, match)
        return self._paged(request, self._in_group(sub.nics, group))

    def _pips(self, request: Request, match: re.Match[str]) -> Reply:
        sub, group = self._scope(request, match)
        return self._paged(request, self._in_group(sub.public_ips, group))


def _instance_view(power: str) -> dict[str, Any]:
    return {
        "statuses": [
            {
                "code": "ProvisioningState/succeeded",
                "level": "Info",
                "displayStatus": "Provisioning succeeded",
            },
            {"code": f"PowerState/{power}", "level": "Info", "displayStatus": f"VM {power}"},
        ]
    }


def _aad_error(error: str, code: int, description: str) -> dict[str, Any]:
    return {
        "error": error,
        "error_description": f"AADSTS{code}: {description} Trace ID: 0 Correlation ID: 0 "
        "Timestamp: 2026-01-01 00:00:00Z",
        "error_codes": [code],
        "timestamp": "2026-01-01 00:00:00Z",
        "trace_id": "00000000-0000-0000-0000-000000000000",
        "correlation_id": "00000000-0000-0000-0000-000000000000",
        "error_uri": "https://login.microsoftonline.com/error?code=" + str(code),
    }
