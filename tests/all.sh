#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: installs what it needs, lints (ruff, mypy,
# ansible-lint), then runs pytest.
# Lab tests (simulated Slurm sites in network namespaces) need root; as another user they skip.
# Extra arguments go to pytest, e.g. `bash tests/all.sh -m "not lab"` for the fast tests alone.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(slurmctld slurmd slurm-client slurm-wlm-torque munge openssh-server openssh-client nftables
              iproute2 procps util-linux python3 python3-venv chromium)
if [ "$(id -u)" = 0 ]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    # No init system here: keep package scripts from starting daemons in the root namespace.
    [ -e /usr/sbin/policy-rc.d ] || printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'

# Lint first: a red lint fails the suite as a failing test would.
python3 -m ruff check .
python3 -m ruff format --check .
python3 -m mypy
ansible-lint -q
python3 -m pytest "$@"
