"""pwrun: run one Parsl workflow across several Slurm clusters."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pwrun")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+src"

__all__ = ["__version__"]


def config():  # -> parsl.config.Config, imported lazily: `pwrun --help` must stay fast
    """The Parsl Config of the run in progress, or the embedded local site outside `pwrun run`
    (whose DFK, if the script leaves it loaded, is cleaned up at interpreter exit).

    A workflow opts in with one line: ``parsl.load(pwrun.config())``.
    """
    from pwrun import state
    from pwrun.parslcfg import standalone_config

    return state.active() or standalone_config()


__all__ += ["config"]


def session(executors, inventory=None, retries=None):  # -> pwrun.sessions.Session (lazy parsl)
    """``with pwrun.session(executors, inventory) as dfk:``: the stages of `pwrun run`
    (inventory, provision, tunnels, load) around the block, torn down when it ends, or at
    interpreter exit if it never does. `executors`: an executors file's path, or its content as
    a mapping of label -> entry; `retries` as `pwrun run --retries`. See pwrun.sessions.Session.
    """
    from pwrun.sessions import Session

    return Session(executors, inventory, retries)


__all__ += ["session"]
