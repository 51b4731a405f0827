"""Errors pwrun reports to users: one line that says what is wrong and where, never a traceback.

Also what every such line is made with: `shown` for a bad value, `first_line` for a foreign
exception, `describe_validation` for a pydantic ValidationError.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pydantic is not imported by the Ansible plugins that only raise PwrunError
    from pydantic import ValidationError
    from pydantic_core import ErrorDetails

SHOWN_CHARS = 80  # of a bad value quoted in a message
Loc = tuple[int | str, ...]


class PwrunError(Exception):
    """A problem the user can fix; its message names the file, field or host at fault."""

    exit_code = 2


class InfrastructureError(PwrunError):
    """A site, tunnel or provisioning step failed: distinct from the workflow's own exit code."""

    exit_code = 3


def source_prefix(kind: str) -> str:
    """How every source problem starts (`SourceError`, plugin warnings, `pwrun inventory`).

    Exactly the problems `strict_sources` fails on start so: a failed source, a skipped record,
    a duplicate name, a passed deadline.
    """
    return f"inventory source {kind!r}: "


class SourceError(PwrunError):
    """An inventory source failed; the message starts with `source_prefix`."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(source_prefix(source) + message)
        self.source = source


class ObjectStoreError(InfrastructureError):
    """Moving an object to or from an object store failed; the message starts with its URL."""

    def __init__(self, url: str, message: str) -> None:
        super().__init__(f"{url}: {message}")
        self.url = url


def shown(value: object) -> str:
    """`value` quoted for a message: one line, shortened."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 4] + "...'"


def shorten_quote(message: str, value: object) -> str:
    """`message` with its quote of `value` shortened (pwrun.validation quotes the whole value)."""
    return message.replace(repr(value), shown(value))


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's first line, shortened: SDK messages can run to whole response bodies."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def dotted(parts: Sequence[object], name: Callable[[object], str] = str) -> str:
    """A field's path as `a.b.0`, each part written by `name`."""
    return ".".join(map(name, parts))


def validation_message(error: ErrorDetails) -> str:
    """Pydantic's message for one error, without its "Value error, " and with a long quoted
    input shortened."""
    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    return shorten_quote(message, value) if isinstance(value, str) else message


def describe_validation(
    exc: ValidationError,
    prefix: Sequence[object] = (),
    *,
    first: bool = False,
    name: Callable[[object], str] = str,
    where: Callable[[str], str] = lambda path: path or "input",
    rename: Callable[[Loc], Loc] = lambda loc: loc,
    explain: Callable[[ErrorDetails], str] = validation_message,
) -> str:
    """Every problem of `exc` (only the first with `first`) as `where: message`, joined by "; ".

    The path of an error is `prefix` then its location (after `rename`), each part written by
    `name` and joined by dots; `where` names that path ("" for the whole input) and `explain`
    gives the message.
    """
    errors = exc.errors()[:1] if first else exc.errors()
    return "; ".join(
        f"{where(dotted((*prefix, *rename(error['loc'])), name))}: {explain(error)}"
        for error in errors
    )


def read_text(path: Path, what: str) -> str:
    """A file the user gave, as UTF-8 text; a PwrunError naming it when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PwrunError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise PwrunError(f"{path}: not UTF-8 text (byte {exc.start})") from None
