"""boto3 for the `aws` source: one EC2 client per region, the tagged instances page by page;
botocore's exceptions become SourceErrors in `_sdk_errors` only.

SDKs are imported in the functions: parsing cached data does not need them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from pwrun.errors import first_line
from pwrun.inventory.aws.options import Options, error
from pwrun.inventory.aws.records import KEPT_FIELDS
from pwrun.process import run_each


def tagged_instances(options: Options) -> dict[str, list[dict[str, Any]]]:
    """{region: [instance, ...]}: the kept fields of the tagged instances of every region."""
    import boto3
    import botocore.config

    with _sdk_errors(options, "option 'profile'"):
        session = boto3.Session(profile_name=options.profile)
    config = botocore.config.Config(
        connect_timeout=options.timeout,
        read_timeout=options.timeout,
        retries={"mode": "standard", "total_max_attempts": options.retries + 1},
    )
    with _sdk_errors(options, "option 'regions' or 'endpoint_url'"):
        clients = {
            region: session.client(
                "ec2", region_name=region, endpoint_url=options.endpoint_url, config=config
            )
            for region in options.regions
        }
    pages = run_each(clients.items(), lambda item: _region_instances(options, *item))
    return dict(zip(clients, pages, strict=True))


def _region_instances(options: Options, region: str, client: Any) -> list[dict[str, Any]]:
    tag_filter = {"Name": f"tag:{options.tag_key}", "Values": [options.tag_value]}
    with _sdk_errors(options, f"region {region}"):
        pages = client.get_paginator("describe_instances").paginate(
            Filters=[tag_filter], PaginationConfig={"PageSize": options.page_size}
        )
        return [
            {key: instance[key] for key in KEPT_FIELDS if key in instance}
            for page in pages
            for reservation in page.get("Reservations", [])
            for instance in reservation.get("Instances", [])
        ]


@contextlib.contextmanager
def _sdk_errors(options: Options, where: str) -> Iterator[None]:
    """botocore's exceptions as SourceErrors naming `where` (a region, or the options at fault)."""
    import botocore.exceptions
    import botocore.parsers

    try:
        yield
    except botocore.exceptions.ProfileNotFound:
        raise error(f"option 'profile': no AWS profile named {options.profile!r}") from None
    except botocore.exceptions.NoCredentialsError:
        raise error(
            "no AWS credentials found (environment, shared credentials file, SSO, instance "
            "role); set them up or name a 'profile'"
        ) from None
    except botocore.exceptions.ClientError as exc:
        details = exc.response.get("Error", {})
        code, message = details.get("Code", "error"), details.get("Message", "")
        raise error(f"{where}: {code}: {message}") from None
    except (botocore.exceptions.ConnectTimeoutError, botocore.exceptions.ReadTimeoutError):
        raise error(f"{where}: no answer within {options.timeout:g} s ('timeout')") from None
    except botocore.parsers.ResponseParserError as exc:
        raise error(f"{where}: malformed API answer: {first_line(exc).rstrip(':')}") from None
    except (botocore.exceptions.BotoCoreError, ValueError) as exc:
        raise error(f"{where}: {first_line(exc)}") from None
