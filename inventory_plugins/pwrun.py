"""Ansible inventory plugin `pwrun`: a thin adapter over pwrun.inventory."""

from __future__ import annotations

DOCUMENTATION = r"""
name: pwrun
short_description: Cluster controllers from Parallel Works and from AWS, GCP and Azure accounts
description:
  - One host per cluster controller (login node), named after the cluster, found on the Parallel
    Works platform (today's clusters API, then the v3 clusters API, then the legacy resources
    API, whichever answers first; C(pwrun_api) says which) and among the instances of
    the user's own AWS, GCP and Azure accounts that carry a controller tag or label.
  - Sources are queried concurrently, each within its own O(sources.pw.deadline) (every source
    has the option). A failing source, a record skipped for a bad or missing field, a cluster
    name used twice, or a passed deadline is reported as a warning that starts with
    C(inventory source '<kind>':), and everything else is still listed, unless
    O(strict_sources) is true, when any of them fails the whole inventory (an error naming the
    source and what failed).
  - Values from the APIs (names, users, addresses, work directories) are checked where they
    enter; tags, labels and other free-form values are kept as they are. All of them are
    untrusted data to Ansible, never templated.
  - The inventory file's name must end in C(pwrun.yml) or C(pwrun.yaml); other files are left to
    other plugins.
  - "Host variables: C(ansible_host) (public address, else private), C(ansible_user), and pwrun's
    facts C(pwrun_source), C(pwrun_status) (on/off), C(pwrun_scheduler) (slurm/pbs/none),
    C(pwrun_partitions), C(pwrun_work_dir), C(pwrun_public_address), C(pwrun_private_address),
    C(pwrun_user), C(pwrun_cloud), C(pwrun_region), C(pwrun_zone), C(pwrun_tags),
    C(pwrun_namespace) (PW), C(pwrun_api) (the PW generation that listed it), C(pwrun_host_keys)
    (the controller's host keys the platform reports), C(pwrun_needs_proxy), C(pwrun_proxy)."
  - "A cluster with host keys gets C(ansible_ssh_common_args) naming a known_hosts file under
    C($PWRUN_HOME/known_hosts/) that pins them (strict checking stays on), plus the proxy option
    when it is reached through the platform."
  - "Built-in groups: C(source_<pw|aws|gcp|azure>), C(status_<on|off>),
    C(scheduler_<slurm|pbs|none>)."
  - "Raw API results are cached when O(cache) is true; C(--flush-cache) and
    C(meta: refresh_inventory) query the APIs again."
  - The same file drives C(pwrun inventory).
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: Marks the file as this plugin's (V(pwrun.hpc.pwrun) from the collection).
    required: true
    choices: [pwrun, pwrun.hpc.pwrun]
    type: str
  strict_sources:
    description:
      - If V(true), any source problem fails the whole inventory with an error that names the
        source and says what failed. Source problems are a source that failed (API error, bad
        credentials...), a record skipped for a bad or missing field, a cluster name used
        twice, and a passed O(sources.pw.deadline).
      - If V(false), each problem is a warning starting with C(inventory source '<kind>':) and
        every usable cluster is still listed.
      - Unlike O(strict), which only concerns O(compose), O(groups) and O(keyed_groups).
      - C(pwrun inventory --strict/--no-strict) overrides it.
    type: bool
    default: false
  sources:
    description:
      - The sources to query, keyed by kind; give a kind with no value (C(pw:)) for its defaults.
      - Unknown kinds or options are errors naming the field.
    required: true
    type: dict
    suboptions:
      pw:
        description: The Parallel Works platform.
        type: dict
        suboptions:
          host:
            description: Platform host; https unless the value starts with C(http://). Default
              C($PW_PLATFORM_HOST), else the host the credential names (C(pwt_) keys,
              C(pwut_) tokens and JWTs carry it).
            type: str
            env: [{name: PW_PLATFORM_HOST}]
          api_key_env:
            description: Environment variable that holds the API key (sent only in the
              Authorization header).
            type: str
            default: PW_API_KEY
          api_key_file:
            description: File whose first line is the API key, used when the variable is unset.
              Must be mode 0600.
            type: path
            default: ~/.ssh/pw_api.key
          api:
            description: Endpoint generation; C(auto) asks today's C(/api/clusters), then v3
              C(/api/compute/clusters), then legacy C(/api/resources), each on a 404 of the one
              before.
            type: str
            choices: [auto, current, v3, legacy]
            default: auto
          proxy_jump:
            description: ssh C(ProxyJump) for the clusters the platform proxies
              (C(shouldPlatformProxy)); set in their C(ansible_ssh_common_args).
            type: str
          proxy_command:
            description: ssh C(ProxyCommand) for those clusters, instead of a jump host.
            type: str
          timeout:
            description: Seconds to wait for each answer.
            type: float
            default: 15
          retries:
            description: Retries (with exponential backoff) on HTTP 429/5xx and network errors.
            type: int
            default: 3
          backoff:
            description: First retry delay in seconds, doubled each retry; Retry-After wins.
            type: float
            default: 0.5
          deadline: &deadline
            description:
              - Seconds the source may take in all, every request, retry and page included.
                Past it the source is reported as failed (C(no complete answer within N s)),
                even if an API call hangs.
            type: float
            default: 60
      aws:
        description: EC2 instances tagged as controllers.
        type: dict
        suboptions:
          regions:
            description: Regions to search; no region is searched unless listed.
            type: list
            elements: str
            required: true
          profile:
            description: Named AWS profile; default is boto3's credential chain.
            type: str
          page_size:
            description: MaxResults of each DescribeInstances page.
            type: int
            default: 1000
          tag_key: &tag_key
            description: Tag (label on GCP) marking controllers.
            type: str
            default: pwrun-role
          tag_value: &tag_value
            description: Value the tag must have.
            type: str
            default: controller
          user: &user
            description: ssh user of controllers without a C(pwrun-user) tag.
            type: str
          endpoint_url: &endpoint_url
            description: API endpoint override (private endpoints, local emulators).
            type: str
          timeout: &timeout
            description: Seconds per API request.
            type: float
            default: 10
          retries: &retries
            description: Retries of a failed request.
            type: int
            default: 2
          deadline: *deadline
      gcp:
        description: Compute Engine instances labelled as controllers.
        type: dict
        suboptions:
          projects:
            description: Projects to search.
            type: list
            elements: str
            required: true
          zones:
            description: Zones to search, e.g. C([us-central1-a]); none is searched unless listed.
            type: list
            elements: str
            required: true
          credentials_file:
            description: Service-account key file; default is application default credentials.
            type: path
          page_size:
            description: maxResults of each instances.list call.
            type: int
            default: 500
          tag_key: *tag_key
          tag_value: *tag_value
          user: *user
          endpoint_url: *endpoint_url
          timeout: *timeout
          retries: *retries
          deadline: *deadline
      azure:
        description: Azure virtual machines tagged as controllers.
        type: dict
        suboptions:
          subscriptions:
            description: Subscription IDs to search.
            type: list
            elements: str
            required: true
          resource_groups:
            description: Resource groups to search; all when omitted.
            type: list
            elements: str
          auth:
            description: C(default) uses DefaultAzureCredential; C(client_secret) a service
              principal (needs O(sources.azure.tenant_id) and O(sources.azure.client_id)).
            type: str
            choices: [default, client_secret]
            default: default
          tenant_id:
            description: Tenant of the service principal.
            type: str
          client_id:
            description: Application (client) id of the service principal.
            type: str
          client_secret_env:
            description: Environment variable holding the client secret.
            type: str
            default: AZURE_CLIENT_SECRET
          client_secret_file:
            description: File (mode 0600) holding the client secret; wins over the variable.
            type: path
          authority_host:
            description: Entra ID authority host (sovereign clouds, private endpoints).
            type: str
          ca_bundle:
            description: CA certificates to trust for the API and the authority.
            type: path
          tag_key: *tag_key
          tag_value: *tag_value
          user: *user
          endpoint_url: *endpoint_url
          timeout: *timeout
          retries: *retries
          deadline: *deadline
"""

EXAMPLES = r"""
# clusters.pwrun.yml
plugin: pwrun
sources:
  pw:                      # $PW_PLATFORM_HOST and $PW_API_KEY (or ~/.ssh/pw_api.key)
  aws:
    regions: [us-east-1, us-west-2]
keyed_groups:
  - key: pwrun_cloud
    prefix: cloud
compose:
  parsl_address: pwrun_private_address
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/pwrun-inventory
"""

from pathlib import Path  # noqa: E402

from ansible.errors import AnsibleParserError  # noqa: E402
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable  # noqa: E402
from ansible.utils.display import Display  # noqa: E402

from pwrun.errors import PwrunError  # noqa: E402
from pwrun.inventory import (  # noqa: E402
    builtin_groups,
    host_vars,
    list_configured,
    load_config,
    pin_host_keys,
)
from pwrun.inventory.config import has_inventory_suffix  # noqa: E402

display = Display()
_FAILED: dict[tuple[str, int], str] = {}  # (file, mtime) -> why listing it failed, this process


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    """Cluster controllers as hosts; see DOCUMENTATION."""

    NAME = "pwrun"

    def verify_file(self, path: str) -> bool:
        return super().verify_file(path) and has_inventory_suffix(path)

    def parse(self, inventory, loader, path, cache=True):  # type: ignore[no-untyped-def]
        super().parse(inventory, loader, path, cache)
        # Ansible retries a file its plugin failed on through `auto`, which loads this plugin
        # again: answer from the first failure rather than read the file and query APIs twice.
        attempt = (str(Path(path).resolve()), Path(path).stat().st_mtime_ns)
        if attempt in _FAILED:
            raise AnsibleParserError(_FAILED[attempt])
        try:
            config = load_config(Path(path))
        except PwrunError as exc:
            raise AnsibleParserError(str(exc)) from None
        self._read_config_data(path)

        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache")
        cached = self._cache.get(cache_key, {}) if use_cache and cache else {}
        try:  # with strict_sources, any source problem raises here
            listing = list_configured(config, cached=cached)
        except PwrunError as exc:
            _FAILED[attempt] = str(exc)
            raise AnsibleParserError(str(exc)) from None
        for message in listing.warnings:
            display.warning(message)
        if use_cache and listing.fetched:
            self._cache[cache_key] = listing.raw

        strict = self.get_option("strict")  # Ansible's constructed meaning only
        for cluster in listing.clusters:
            host = cluster.name
            self.inventory.add_host(host)
            facts = host_vars(cluster, pin_host_keys(cluster))
            for key, value in facts.items():
                self.inventory.set_variable(host, key, value)  # untrusted: never templated
            for group in builtin_groups(cluster):
                self.inventory.add_group(group)
                self.inventory.add_child(group, host)
            self._set_composite_vars(self.get_option("compose"), facts, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), facts, host, strict=strict)
            self._add_host_to_keyed_groups(
                self.get_option("keyed_groups"), facts, host, strict=strict
            )
