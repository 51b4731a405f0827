"""The console pwrun reports on: stderr, lines never wrapped (logs and CI read them whole).

Messages carry text from files and APIs: `warn` and `error` print it as text, never as markup.
"""

from rich.console import Console
from rich.markup import escape

err = Console(stderr=True, soft_wrap=True)


def warn(message: str) -> None:
    err.print(f"[bold yellow]warning:[/] {escape(message)}", highlight=False)


def error(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
