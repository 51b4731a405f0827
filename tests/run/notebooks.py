"""Notebooks run as Jupyter runs them: nbclient driving a real ipykernel, cell by cell."""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Iterator
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

# A kernel asked to shut down gets this long before it is killed: its atexit teardown needs
# seconds (Jupyter's default is 5).
SHUTDOWN_WAIT = 120


class Kernel:
    """A live kernel that runs a notebook's cells one by one (the notebook keeps them)."""

    def __init__(self, client: NotebookClient) -> None:
        self.client = client

    def run(self, source: str) -> str:
        """Run one cell; its stdout. A cell that raises fails the test with its traceback."""
        nb = self.client.nb
        nb.cells.append(nbformat.v4.new_code_cell(textwrap.dedent(source)))
        cell = self.client.execute_cell(nb.cells[-1], len(nb.cells) - 1)
        return "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout")

    def interrupt(self) -> None:
        """What Jupyter's stop button does: the kernel's interrupt (SIGINT to the kernel)."""
        assert self.client.km is not None
        self.client.km.interrupt_kernel()


@contextlib.contextmanager
def kernel(cwd: Path, timeout: float = 600) -> Iterator[Kernel]:
    """A python3 kernel in `cwd` with this process's environment; shut down (as a person's
    "Shut Down Kernel" does: asked, then killed after SHUTDOWN_WAIT) when the block ends."""
    nb = nbformat.v4.new_notebook()
    km = KernelManager(kernel_name="python3", shutdown_wait_time=SHUTDOWN_WAIT)
    client = NotebookClient(
        nb, km=km, timeout=timeout, resources={"metadata": {"path": str(cwd)}}, allow_errors=False
    )
    with client.setup_kernel(cleanup_kc=True):  # shut down even though the km is ours
        yield Kernel(client)
