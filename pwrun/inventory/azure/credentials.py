"""The azure-identity credential of the `azure` source, and the service principal's secret."""

from __future__ import annotations

import os
from typing import Any

from pwrun.inventory.azure.options import Options, error


def credential(options: Options) -> Any:
    """A ClientSecretCredential or DefaultAzureCredential, as the options say."""
    from azure.identity import (  # SDKs are imported here: parsing cached data skips them
        ClientSecretCredential,
        DefaultAzureCredential,
    )

    settings = options.transport()
    if options.authority_host:
        settings |= {"authority": options.authority_host, "disable_instance_discovery": True}
    if options.auth == "default":
        return DefaultAzureCredential(**settings)
    tenant_id, client_id = options.tenant_id, options.client_id
    if not (tenant_id and client_id):  # Options' own validator requires both for client_secret
        raise error("auth client_secret needs options 'tenant_id' and 'client_id'")
    return ClientSecretCredential(tenant_id, client_id, _client_secret(options), **settings)


def _client_secret(options: Options) -> str:
    """From `client_secret_file` when set, else from the variable `client_secret_env`."""
    path = options.client_secret_file
    if path is not None:
        try:
            secret = path.expanduser().read_text().strip()
        except OSError as exc:
            raise error(
                f"option 'client_secret_file': cannot read {path}: {exc.strerror}"
            ) from None
        if not secret:
            raise error(f"option 'client_secret_file': {path} is empty")
        return secret
    secret = os.environ.get(options.client_secret_env, "").strip()
    if not secret:
        raise error(
            f"option 'client_secret_env': environment variable {options.client_secret_env} is "
            "not set (or set 'client_secret_file')"
        )
    return secret
