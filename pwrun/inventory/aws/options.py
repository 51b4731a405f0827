"""Options of the `aws` source."""

from __future__ import annotations

from pydantic import Field

from pwrun.errors import SourceError
from pwrun.inventory.cloud import CloudOptions

KIND = "aws"


class Options(CloudOptions):
    """Options of the `aws` source."""

    regions: list[str] = Field(
        min_length=1, description="Regions to search, e.g. [us-east-1]; none is searched unasked."
    )
    profile: str | None = Field(None, description="Named profile; default: boto3's chain.")
    page_size: int = Field(1000, ge=5, le=1000, description="MaxResults per DescribeInstances.")


def error(message: str) -> SourceError:
    """A failure of the `aws` source."""
    return SourceError(KIND, message)
