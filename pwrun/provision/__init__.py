"""Workstation-side logic behind the roles that make clusters ready; their modules call it."""
