"""AWS source: EC2 instances tagged as controllers, in the regions the user lists.

Credentials come from boto3's usual chain (environment, shared files, SSO, instance role) or
the named `profile`. Only the tagged instances are asked for (a server-side tag filter).

- `options`: the `sources.aws` options
- `client`: boto3: clients, DescribeInstances pages, botocore's errors as SourceErrors
- `records`: the instance fields kept, and the Cluster an instance becomes
- `source`: `AwsSource`, fetch and parse
"""

from pwrun.inventory.aws.options import Options
from pwrun.inventory.aws.source import AwsSource

__all__ = ["AwsSource", "Options"]
