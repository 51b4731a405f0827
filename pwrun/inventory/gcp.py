"""GCP source: Compute Engine instances labelled as controllers, in the zones the user lists.

Credentials: the service-account key file `credentials_file`, else application default
credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC file, the metadata server).
Label values cannot hold commas or slashes, so `pwrun-partitions` and `pwrun-work-dir` (and the
other `pwrun-*` settings) are read from instance metadata first, then from labels.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from pwrun.errors import SourceError, first_line
from pwrun.inventory.cloud import (
    SETTING_KEYS,
    CloudOptions,
    cluster_fields,
    run_each,
)
from pwrun.inventory.model import Cluster, Parsed, RawModel, Source, plain, record_id, validate
from pwrun.validation import ClusterName, IPAddress

if TYPE_CHECKING:
    from google.cloud import compute_v1

KIND = "gcp"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


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


class _AccessConfig(RawModel):
    natIP: IPAddress | None = None


class _Nic(RawModel):
    networkIP: IPAddress | None = None
    accessConfigs: list[_AccessConfig] = Field(default_factory=list)


class _Instance(RawModel):
    name: ClusterName
    status: str = Field(min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)
    networkInterfaces: list[_Nic] = Field(default_factory=list)
    settings: dict[str, str] = Field(default_factory=dict)


class GcpSource(Source[Options]):
    """Controllers from instances.list, one call series per project and zone."""

    kind: ClassVar[str] = KIND

    def fetch(self) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """{project: {zone: [instance, ...]}} for the labelled instances."""
        credentials = self._credentials()
        places = [(p, z) for p in self.options.projects for z in self.options.zones]
        found = run_each(places, lambda place: self._fetch_zone(credentials, *place))
        raw: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for (project, zone), instances in zip(places, found, strict=True):
            raw.setdefault(project, {})[zone] = instances
        return raw

    def _credentials(self) -> Any:
        import google.auth  # SDKs are imported here: parsing cached data does not need them
        import google.auth.exceptions
        from google.oauth2 import service_account

        path = self.options.credentials_file
        try:
            if path is not None:
                return service_account.Credentials.from_service_account_file(
                    str(path.expanduser()), scopes=SCOPES
                )
            credentials, _ = google.auth.default(scopes=SCOPES)
            return credentials
        except FileNotFoundError:
            raise SourceError(KIND, f"option 'credentials_file': {path} does not exist") from None
        except (ValueError, KeyError, OSError) as exc:  # bad JSON, missing key field, unreadable
            problem = f"missing field {exc}" if isinstance(exc, KeyError) else first_line(exc)
            raise SourceError(
                KIND, f"option 'credentials_file': {path} is not a service-account key: {problem}"
            ) from None
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise SourceError(
                KIND,
                "no application default credentials (set 'credentials_file' or run "
                f"'gcloud auth application-default login'): {first_line(exc)}",
            ) from None

    def _fetch_zone(self, credentials: Any, project: str, zone: str) -> list[dict[str, Any]]:
        import google.auth.exceptions
        import requests
        from google.api_core import exceptions as api_exceptions
        from google.api_core import retry as api_retry
        from google.api_core.client_options import ClientOptions
        from google.cloud import compute_v1
        from google.protobuf.json_format import ParseError

        where = f"project {project} zone {zone}"
        endpoint = self.options.endpoint_url
        client = compute_v1.InstancesClient(
            credentials=credentials,
            transport="rest",
            client_options=ClientOptions(api_endpoint=endpoint) if endpoint else None,
        )
        request = compute_v1.ListInstancesRequest(
            project=project,
            zone=zone,
            filter=f'labels.{self.options.tag_key} = "{self.options.tag_value}"',
            max_results=self.options.page_size,
        )
        retry = api_retry.Retry(
            initial=0.2,
            maximum=2.0,
            timeout=self.options.timeout * (self.options.retries + 1),
            predicate=api_retry.if_exception_type(
                api_exceptions.ServiceUnavailable,
                api_exceptions.TooManyRequests,
                api_exceptions.InternalServerError,
            ),
        )
        try:
            pager = client.list(request=request, retry=retry, timeout=self.options.timeout)
            return [_keep(instance) for instance in pager]
        except api_exceptions.GoogleAPICallError as exc:
            message = re.sub(r"^[A-Z]+ \S+: ", "", exc.message or "")  # drop "GET <url>: "
            raise SourceError(KIND, f"{where}: {exc.code} {message}") from None
        except api_exceptions.RetryError as exc:
            raise SourceError(KIND, f"{where}: gave up retrying: {first_line(exc)}") from None
        except google.auth.exceptions.GoogleAuthError as exc:
            raise SourceError(KIND, f"{where}: authentication failed: {first_line(exc)}") from None
        except ParseError as exc:
            raise SourceError(KIND, f"{where}: malformed API answer: {first_line(exc)}") from None
        except requests.Timeout:
            raise SourceError(
                KIND, f"{where}: no answer within {self.options.timeout:g} s ('timeout')"
            ) from None
        except requests.ConnectionError as exc:
            reason = "connection refused" if "refused" in str(exc) else first_line(exc, 150)
            api = endpoint or "compute.googleapis.com"
            raise SourceError(KIND, f"{where}: cannot reach the API at {api}: {reason}") from None
        except requests.RequestException as exc:
            raise SourceError(KIND, f"{where}: {first_line(exc)}") from None

    def parse(self, raw: Any) -> Parsed:
        if not isinstance(raw, dict):
            raise SourceError(KIND, "cached data is not a mapping of projects; flush the cache")
        parsed = Parsed(KIND)
        for project, zones in raw.items():
            if not isinstance(zones, dict):
                raise SourceError(KIND, f"project {plain(project)}: zones are not a mapping")
            for zone, instances in zones.items():
                place = f"project {plain(project)} zone {plain(zone)}"
                if not isinstance(instances, list):
                    raise SourceError(KIND, f"{place}: instances are not a list")
                for index, data in enumerate(instances):
                    where = f"{place} instance {record_id(data, 'name', index)}"
                    parsed.add(where, functools.partial(self._cluster, zone, data))
        return parsed

    def _cluster(self, zone: str, data: Any) -> Cluster | None:
        instance = validate(_Instance, data)
        if instance.labels.get(self.options.tag_key) != self.options.tag_value:
            return None
        nic = instance.networkInterfaces[0] if instance.networkInterfaces else _Nic()
        public = next((ac.natIP for ac in nic.accessConfigs if ac.natIP), None)
        settings = {**instance.labels, **instance.settings}
        return Cluster(
            name=instance.name,
            source=KIND,
            cloud=KIND,
            public_address=public,
            private_address=nic.networkIP,
            status="on" if instance.status == "RUNNING" else "off",
            region=zone.rsplit("-", 1)[0],
            zone=zone,
            tags=instance.labels,
            **cluster_fields(settings, self.options.user, tag="metadata item or label"),
        )


def _keep(instance: compute_v1.Instance) -> dict[str, Any]:
    """The part of an instance that is kept (and cached), in the API's JSON names. Metadata can
    hold ssh keys and startup scripts, so only its `pwrun-*` items are kept."""
    return {
        "name": instance.name,
        "status": instance.status,
        "labels": dict(instance.labels),
        "networkInterfaces": [
            {
                "networkIP": nic.network_i_p or None,
                "accessConfigs": [{"natIP": ac.nat_i_p or None} for ac in nic.access_configs],
            }
            for nic in instance.network_interfaces
        ],
        "settings": {
            item.key: item.value for item in instance.metadata.items if item.key in SETTING_KEYS
        },
    }
