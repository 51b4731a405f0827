"""The console pwrun reports on: stderr, lines never wrapped (logs and CI read them whole)."""

from rich.console import Console

err = Console(stderr=True, soft_wrap=True)
