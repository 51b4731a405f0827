"""Find cluster controllers on the Parallel Works platform and in AWS, GCP and Azure accounts.

config = load_config("clusters.pwrun.yml")
listing = list_configured(config)   # sources queried concurrently
listing.clusters, listing.errors     # errors: what strict_sources fails on
listing.notes                        # worth a warning, never a failure

Every source problem's message starts with source_prefix(kind), "inventory source '<kind>': ",
as does the plugin's warning or error for it; SOURCE_PROBLEM finds one in a line of output.
"""

from pwrun.errors import source_prefix
from pwrun.inventory.config import InventoryConfig, load_config
from pwrun.inventory.core import (
    Listing,
    builtin_groups,
    host_vars,
    list_clusters,
    list_configured,
    pin_host_keys,
)
from pwrun.inventory.model import (
    SOURCE_PROBLEM,
    Cluster,
    Parsed,
    Source,
    SourceOptions,
    note_prefix,
)

__all__ = [
    "SOURCE_PROBLEM",
    "Cluster",
    "InventoryConfig",
    "Listing",
    "Parsed",
    "Source",
    "SourceOptions",
    "builtin_groups",
    "host_vars",
    "list_clusters",
    "list_configured",
    "load_config",
    "note_prefix",
    "pin_host_keys",
    "source_prefix",
]
