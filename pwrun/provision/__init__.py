"""Provisioning: the inventory as Ansible sees it, ansible-runner driving site.yml, and the
fast path that skips it for a site whose recorded state still holds."""
