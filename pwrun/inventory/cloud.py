"""What the AWS, GCP and Azure sources share: common options, tags to cluster fields.

A controller is an instance whose tag (AWS, Azure) or label (GCP) `tag_key` equals `tag_value`
(default `pwrun-role=controller`). These per-instance tags, when present, fill the rest:

- `pwrun-user`: ssh user (else the source's `user` option)
- `pwrun-scheduler`: slurm (default), pbs or none
- `pwrun-partitions`: partition names separated by commas or spaces
- `pwrun-work-dir`: the work directory on the cluster
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from pwrun.errors import shown
from pwrun.inventory.model import RecordError, SourceOptions, checked
from pwrun.validation import UserName, remote_path, user_name

DEFAULT_TAG_KEY = "pwrun-role"
DEFAULT_TAG_VALUE = "controller"
SETTING_KEYS = ("pwrun-user", "pwrun-scheduler", "pwrun-partitions", "pwrun-work-dir")
SCHEDULERS = ("slurm", "pbs", "none")


class CloudOptions(SourceOptions):
    """Options every cloud source has."""

    tag_key: str = Field(DEFAULT_TAG_KEY, min_length=1, description="Tag marking controllers.")
    tag_value: str = Field(DEFAULT_TAG_VALUE, description="Value `tag_key` must have.")
    user: UserName | None = Field(
        None, description="ssh user for controllers without a `pwrun-user` tag."
    )
    endpoint_url: str | None = Field(
        None, description="API endpoint override, for private endpoints and local test servers."
    )
    timeout: float = Field(10.0, gt=0, le=300, description="Seconds per API request.")
    retries: int = Field(2, ge=0, le=10, description="Retries of a failed request (SDK's own).")

    def is_controller(self, tags: Mapping[str, str] | None) -> bool:
        """Whether an instance with these tags (labels) is a controller."""
        return (tags or {}).get(self.tag_key) == self.tag_value


def cluster_fields(
    settings: Mapping[str, str], default_user: str | None, tag: str = "tag"
) -> dict[str, Any]:
    """The Cluster fields that come from the `pwrun-*` tags (`tag`: what they are called here)
    of one controller; a RecordError names the bad tag."""
    scheduler = settings.get("pwrun-scheduler", "slurm").strip().lower()
    if scheduler not in SCHEDULERS:
        raise RecordError(
            f"{tag} 'pwrun-scheduler': {shown(scheduler)} is not allowed here: use one of "
            + ", ".join(SCHEDULERS)
        )
    partitions = settings.get("pwrun-partitions", "")
    user, work_dir = settings.get("pwrun-user"), settings.get("pwrun-work-dir")
    return {
        "user": checked(f"{tag} 'pwrun-user'", user_name, user) if user else default_user,
        "scheduler": scheduler,
        "partitions": tuple(name for name in re.split(r"[,\s]+", partitions) if name),
        "work_dir": checked(f"{tag} 'pwrun-work-dir'", remote_path, work_dir) if work_dir else None,
    }
