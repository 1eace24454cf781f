"""Plain pytest for the addon's pure ``lib`` package, without Odoo.

``pytest.ini`` beside this file makes ``tests/unit`` pytest's root, so the addon's own
``__init__.py`` (which imports Odoo) is never imported; the repository root goes on
``sys.path`` so ``from lib import crypto`` works.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
