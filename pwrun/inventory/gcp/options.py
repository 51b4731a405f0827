"""Options of the `gcp` source."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from pwrun.errors import SourceError
from pwrun.inventory.cloud import CloudOptions

KIND = "gcp"


class Options(CloudOptions):
    """Options of the `gcp` source."""

    projects: list[str] = Field(min_length=1, description="Project ids to search.")
    zones: list[str] = Field(
        min_length=1, description="Zones to search, e.g. [us-central1-a]; none is searched unasked."
    )
    credentials_file: Path | None = Field(
        None, description="Service-account key file; default: application default credentials."
    )
    page_size: int = Field(500, ge=1, le=500, description="maxResults per instances.list call.")


def error(message: str) -> SourceError:
    """A failure of the `gcp` source."""
    return SourceError(KIND, message)
