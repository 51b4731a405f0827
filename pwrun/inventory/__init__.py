"""Find cluster controllers on the Parallel Works platform and in AWS, GCP and Azure accounts.

config = load_config("clusters.pwrun.yml")
listing = list_configured(config)   # sources queried concurrently
listing.clusters, listing.errors
"""

from pwrun.inventory.config import InventoryConfig, load_config
from pwrun.inventory.core import Listing, builtin_groups, host_vars, list_clusters, list_configured
from pwrun.inventory.model import Cluster, Source

__all__ = [
    "Cluster",
    "InventoryConfig",
    "Listing",
    "Source",
    "builtin_groups",
    "host_vars",
    "list_clusters",
    "list_configured",
    "load_config",
]
