"""Errors pwrun reports to users: one line that says what is wrong and where, never a traceback."""


class PwrunError(Exception):
    """A problem the user can fix; its message names the file, field or host at fault."""

    exit_code = 2


class InfrastructureError(PwrunError):
    """A site, tunnel or provisioning step failed: distinct from the workflow's own exit code."""

    exit_code = 3


class SourceError(PwrunError):
    """An inventory source failed; the message starts with the source's name."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"inventory source {source!r}: {message}")
        self.source = source


class ObjectStoreError(InfrastructureError):
    """Moving an object to or from an object store failed; the message starts with its URL."""

    def __init__(self, url: str, message: str) -> None:
        super().__init__(f"{url}: {message}")
        self.url = url
