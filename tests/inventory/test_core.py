"""Listing several sources at once: concurrency, errors per source, strict, duplicates, cache."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from pwrun.errors import PwrunError
from pwrun.inventory import builtin_groups, host_vars, list_clusters
from pwrun.inventory.model import Cluster, Parsed, Source, SourceOptions
from pwrun.inventory.pw import Options, PwSource
from tests.emulators.pw_api import PwApiEmulator, pw_cluster
from tests.inventory.conftest import PW_KEY


@pytest.fixture
def second_api(pw_env) -> Iterator[PwApiEmulator]:
    with PwApiEmulator(api_key=PW_KEY, username="bob") as api:
        api.clusters.append(pw_cluster("bobcluster", namespace="bob", user="bob"))
        yield api


def pw(api: PwApiEmulator, **options) -> PwSource:
    return PwSource(Options(host=api.url, **options))


def test_sources_are_queried_concurrently(pw_api: PwApiEmulator, second_api: PwApiEmulator) -> None:
    pw_api.delay = second_api.delay = 0.3
    listing = list_clusters({"first": pw(pw_api), "second": pw(second_api)})
    assert [c.name for c in listing.clusters] == [
        "gcpslurmv2",
        "awsoff",
        "onprem",
        "bare",
        "bobcluster",
    ]
    (start_a, end_a), (start_b, end_b) = pw_api.request_times[0], second_api.request_times[0]
    assert start_b < end_a and start_a < end_b  # the two first requests overlapped


def test_failing_source_is_reported_and_others_return(pw_api: PwApiEmulator, second_api) -> None:
    second_api.status = 500
    listing = list_clusters({"first": pw(pw_api), "second": pw(second_api, retries=0)})
    assert len(listing.clusters) == 4
    assert [e.source for e in listing.errors] == ["pw"]
    assert "HTTP 500" in str(listing.errors[0])
    assert set(listing.raw) == {"first"}


def test_strict_mode_fails_on_any_source(pw_api: PwApiEmulator, second_api) -> None:
    second_api.status = 503
    with pytest.raises(PwrunError, match=r"inventory source 'pw': GET .* HTTP 503"):
        list_clusters(
            {"first": pw(pw_api), "second": pw(second_api, retries=0)}, strict_sources=True
        )


def test_duplicate_names_keep_the_first_source(pw_api: PwApiEmulator, second_api) -> None:
    second_api.clusters.append(pw_cluster("gcpslurmv2", namespace="bob", ip="203.0.113.9"))
    listing = list_clusters({"first": pw(pw_api), "second": pw(second_api)})
    names = [c.name for c in listing.clusters]
    assert names.count("gcpslurmv2") == 1 and "bobcluster" in names
    kept = next(c for c in listing.clusters if c.name == "gcpslurmv2")
    assert kept.namespace == "alice"
    [error] = listing.errors
    assert str(error) == (
        "inventory source 'second': cluster name 'gcpslurmv2' (field name) is already used by "
        "source 'first'; skipped it, rename one of them"
    )
    with pytest.raises(PwrunError, match="already used by source 'first'"):
        list_clusters({"first": pw(pw_api), "second": pw(second_api)}, strict_sources=True)


def test_cached_raw_results_skip_the_api(pw_api: PwApiEmulator, pw_env) -> None:
    first = list_clusters({"pw": pw(pw_api)})
    assert first.fetched == {"pw"}
    cached = json.loads(json.dumps(first.raw))  # as a JSON cache stores it
    assert PW_KEY not in json.dumps(cached)
    hits = pw_api.hits.total()
    again = list_clusters({"pw": pw(pw_api)}, cached=cached)
    assert again.clusters == first.clusters
    assert again.fetched == set() and pw_api.hits.total() == hits


def test_unusable_cache_entry_is_fetched_again(pw_api: PwApiEmulator, pw_env) -> None:
    listing = list_clusters({"pw": pw(pw_api)}, cached={"pw": ["from", "an", "old", "version"]})
    assert len(listing.clusters) == 4 and listing.fetched == {"pw"}


class _Exploding(Source[SourceOptions]):
    """A source whose SDK raises something it did not translate."""

    kind = "boom"

    def fetch(self) -> object:
        raise RuntimeError("socket closed by peer")

    def parse(self, raw: object) -> Parsed:
        return Parsed(self.kind)


def test_unexpected_exception_is_a_source_error(pw_api: PwApiEmulator, pw_env) -> None:
    listing = list_clusters({"pw": pw(pw_api), "boom": _Exploding(SourceOptions())})
    assert len(listing.clusters) == 4
    assert [str(e) for e in listing.errors] == [
        "inventory source 'boom': unexpected RuntimeError: socket closed by peer"
    ]


def test_host_vars_and_groups() -> None:
    cluster = Cluster(
        name="c1",
        source="aws",
        public_address="198.51.100.7",
        private_address="10.0.0.7",
        user="ec2-user",
        status="on",
        scheduler="pbs",
        partitions=("batch",),
        cloud="aws",
        region="us-east-1",
        zone="us-east-1a",
        tags={"team": "hpc"},
    )
    facts = host_vars(cluster)
    assert facts["ansible_host"] == "198.51.100.7" and facts["ansible_user"] == "ec2-user"
    assert facts["pwrun_partitions"] == ["batch"] and facts["pwrun_tags"] == {"team": "hpc"}
    assert facts["pwrun_private_address"] == "10.0.0.7" and "pwrun_name" not in facts
    assert builtin_groups(cluster) == ["source_aws", "status_on", "scheduler_pbs"]
    bare = host_vars(Cluster(name="c2", source="pw"))
    assert "ansible_host" not in bare and "ansible_user" not in bare


def test_skipped_record_is_an_error_strict_sources_fails_on(pw_api: PwApiEmulator, pw_env) -> None:
    pw_api.v3_items = [{"name": "good"}, {"name": "bad name"}]
    listing = list_clusters({"pw": pw(pw_api)})
    assert [c.name for c in listing.clusters] == ["good"]
    [error] = listing.errors
    assert str(error).startswith(
        "inventory source 'pw': /api/compute/clusters cluster #1 ('bad name'): field 'name': "
        "'bad name' is not allowed here"
    )
    with pytest.raises(PwrunError, match=r"cluster #1 \('bad name'\).*; record skipped$"):
        list_clusters({"pw": pw(pw_api)}, strict_sources=True)


def test_slow_source_is_cut_at_its_deadline(pw_api: PwApiEmulator, second_api) -> None:
    second_api.trickle = 0.05
    started = time.monotonic()
    listing = list_clusters({"first": pw(pw_api), "second": pw(second_api, deadline=1)})
    assert time.monotonic() - started < 4  # the deadline (1 s) with room for a loaded machine
    assert len(listing.clusters) == 4 and set(listing.raw) == {"first"}
    [error] = map(str, listing.errors)
    assert error.startswith("inventory source ") and error.endswith(
        "no complete answer within 1 s (option 'deadline')"
    )
