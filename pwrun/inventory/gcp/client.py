"""google-cloud-compute for the `gcp` source: credentials, then instances.list page by page in
every project and zone; the SDK's exceptions become SourceErrors in `_sdk_errors` only.

SDKs are imported in the functions: parsing cached data does not need them.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pwrun.errors import first_line
from pwrun.inventory.cloud import SETTING_KEYS
from pwrun.inventory.gcp.options import Options, error
from pwrun.process import run_each

if TYPE_CHECKING:
    from google.cloud import compute_v1

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


def labelled_instances(options: Options) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """{project: {zone: [instance, ...]}}: the kept fields of the labelled instances."""
    credentials = _credentials(options)
    places = [(p, z) for p in options.projects for z in options.zones]
    found = run_each(places, lambda place: _zone_instances(options, credentials, *place))
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for (project, zone), instances in zip(places, found, strict=True):
        raw.setdefault(project, {})[zone] = instances
    return raw


def _credentials(options: Options) -> Any:
    """The key file's service account, else application default credentials."""
    import google.auth
    from google.oauth2 import service_account

    path = options.credentials_file
    with _sdk_errors(options, "credentials"):
        if path is None:
            credentials, _ = google.auth.default(scopes=SCOPES)
            return credentials
        try:
            return service_account.Credentials.from_service_account_file(
                str(path.expanduser()), scopes=SCOPES
            )
        except FileNotFoundError:
            raise error(f"option 'credentials_file': {path} does not exist") from None
        except (ValueError, KeyError, OSError) as exc:  # bad JSON, missing key field, unreadable
            problem = f"missing field {exc}" if isinstance(exc, KeyError) else first_line(exc)
            raise error(
                f"option 'credentials_file': {path} is not a service-account key: {problem}"
            ) from None


def _zone_instances(
    options: Options, credentials: Any, project: str, zone: str
) -> list[dict[str, Any]]:
    from google.api_core import exceptions as api_exceptions
    from google.api_core import retry as api_retry
    from google.api_core.client_options import ClientOptions
    from google.cloud import compute_v1

    endpoint = options.endpoint_url
    client = compute_v1.InstancesClient(
        credentials=credentials,
        transport="rest",
        client_options=ClientOptions(api_endpoint=endpoint) if endpoint else None,
    )
    request = compute_v1.ListInstancesRequest(
        project=project,
        zone=zone,
        filter=f'labels.{options.tag_key} = "{options.tag_value}"',
        max_results=options.page_size,
    )
    retry = api_retry.Retry(
        initial=0.2,
        maximum=2.0,
        timeout=options.timeout * (options.retries + 1),
        predicate=api_retry.if_exception_type(
            api_exceptions.ServiceUnavailable,
            api_exceptions.TooManyRequests,
            api_exceptions.InternalServerError,
        ),
    )
    with _sdk_errors(options, f"project {project} zone {zone}"):
        pager = client.list(request=request, retry=retry, timeout=options.timeout)
        return [_kept(instance) for instance in pager]


def _kept(instance: compute_v1.Instance) -> dict[str, Any]:
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


@contextlib.contextmanager
def _sdk_errors(options: Options, where: str) -> Iterator[None]:
    """google-auth's, google-api-core's and requests' exceptions as SourceErrors naming `where`."""
    import google.auth.exceptions
    import requests
    from google.api_core import exceptions as api_exceptions
    from google.protobuf.json_format import ParseError

    try:
        yield
    except api_exceptions.GoogleAPICallError as exc:
        message = re.sub(r"^[A-Z]+ \S+: ", "", exc.message or "")  # drop "GET <url>: "
        raise error(f"{where}: {exc.code} {message}") from None
    except api_exceptions.RetryError as exc:
        raise error(f"{where}: gave up retrying: {first_line(exc)}") from None
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise error(
            "no application default credentials (set 'credentials_file' or run "
            f"'gcloud auth application-default login'): {first_line(exc)}"
        ) from None
    except google.auth.exceptions.GoogleAuthError as exc:
        raise error(f"{where}: authentication failed: {first_line(exc)}") from None
    except ParseError as exc:
        raise error(f"{where}: malformed API answer: {first_line(exc)}") from None
    except requests.Timeout:
        raise error(f"{where}: no answer within {options.timeout:g} s ('timeout')") from None
    except requests.ConnectionError as exc:
        reason = "connection refused" if "refused" in str(exc) else first_line(exc, 150)
        api = options.endpoint_url or "compute.googleapis.com"
        raise error(f"{where}: cannot reach the API at {api}: {reason}") from None
    except requests.RequestException as exc:
        raise error(f"{where}: {first_line(exc)}") from None
