"""Workstation-side logic behind the Ansible roles that make clusters ready (thin modules call it)."""
