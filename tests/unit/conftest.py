"""Run the addon's pure ``lib`` package under plain pytest, without Odoo.

The repository root is the addon, so it is put first on ``sys.path`` and
``from lib import crypto`` works.

The root also holds the addon's ``__init__.py``, which imports the Odoo models;
pytest therefore collects the root as a package and, before the first test,
imports that ``__init__.py`` to look for ``setup_module``. Outside an Odoo
server that import fails, so the root package's setup is skipped here: unit
tests must never depend on it.
"""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def pytest_collection_modifyitems(items):
    root = os.path.realpath(ROOT)
    for item in items:
        for node in item.listchain():
            if isinstance(node, pytest.Package) and os.path.realpath(str(node.path)) == root:
                node.setup = lambda: None
