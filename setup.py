"""Ship the Ansible content (site.yml, roles, playbooks, plugins) with the package.

Everything else is in pyproject.toml; this only lists the content's files, which a wheel
installs under <prefix>/share/pwrun so that an installed pwrun finds its roles.
"""

from pathlib import Path

from setuptools import setup

CONTENT = ("site.yml", "ansible.cfg", "roles", "playbooks", "inventory_plugins")
# The roles call their filters by FQCN (pwrun.hpc.*): ansible.cfg's collections_path finds them
# under .ansible/collections/, which in the source tree links to the tree itself.
FILTERS = ("plugins/filter", ".ansible/collections/ansible_collections/pwrun/hpc/plugins/filter")


def content_files() -> list[tuple[str, list[str]]]:
    by_dir: dict[str, list[str]] = {}
    for top in map(Path, CONTENT):
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" not in path.parts:
                by_dir.setdefault(str(Path("share/pwrun") / path.parent), []).append(str(path))
    source, installed = FILTERS
    by_dir[str(Path("share/pwrun") / installed)] = sorted(map(str, Path(source).glob("*.py")))
    return sorted(by_dir.items())


setup(data_files=content_files())
