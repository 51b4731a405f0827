"""Options of the `azure` source, and the transport settings they lead to."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from pwrun.errors import SourceError
from pwrun.inventory.cloud import CloudOptions

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

    def transport(self) -> dict[str, Any]:
        """azure-core settings the credential and the API clients share."""
        settings: dict[str, Any] = {
            "connection_timeout": self.timeout,
            "read_timeout": self.timeout,
            "retry_total": self.retries,
        }
        if self.ca_bundle:
            settings["connection_verify"] = str(self.ca_bundle)
        return settings


def error(message: str) -> SourceError:
    """A failure of the `azure` source."""
    return SourceError(KIND, message)
