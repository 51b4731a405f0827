"""GCP source: Compute Engine instances labelled as controllers, in the zones the user lists.

Credentials: the service-account key file `credentials_file`, else application default
credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC file, the metadata server).
Label values cannot hold commas or slashes, so `pwrun-partitions` and `pwrun-work-dir` (and the
other `pwrun-*` settings) are read from instance metadata first, then from labels.

- `options`: the `sources.gcp` options
- `client`: google-cloud-compute: credentials, instances.list pages, the SDK's errors as
  SourceErrors
- `records`: the instance fields kept, and the Cluster an instance becomes
- `source`: `GcpSource`, fetch and parse
"""

from pwrun.inventory.gcp.options import Options
from pwrun.inventory.gcp.source import GcpSource

__all__ = ["GcpSource", "Options"]
