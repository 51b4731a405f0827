"""Azure source: VMs tagged as controllers, in the subscriptions (and resource groups) listed.

Addresses come from the VMs' network interfaces and public IP addresses, listed in bulk
(azure-mgmt-network), not fetched one by one. Power state: one statusOnly listing per
subscription, or, when resource groups are named, each controller's instance view (a role
scoped to a resource group may not list the whole subscription).

Credentials: azure-identity's DefaultAzureCredential (environment, workload identity, managed
identity, Azure CLI...) or, with `auth: client_secret`, a service principal whose secret is read
from the environment variable `client_secret_env` or the file `client_secret_file`, never
from the inventory file itself.

- `options`: the `sources.azure` options, and the transport settings they lead to
- `credentials`: the azure-identity credential and the service principal's secret
- `client`: azure-mgmt-*: VMs, power states, NICs and public IPs of each subscription, kept as
  JSON; the SDK's exceptions as SourceErrors
- `records`: the kept data and the Cluster a VM becomes
- `source`: `AzureSource`, fetch and parse
"""

from pwrun.inventory.azure.options import Options
from pwrun.inventory.azure.source import AzureSource

__all__ = ["AzureSource", "Options"]
