"""Plain pytest for the addon's pure ``lib`` package, without Odoo.

``pytest.ini`` beside this file makes ``tests/unit`` pytest's root, so the addon's own
``__init__.py`` (which imports Odoo) is never imported; the repository root goes on
``sys.path`` so ``from lib import crypto`` works, and the one test HTTP sink
(tests/http_sink.py, standard library only) is loaded by its path as ``http_sink``, so that
``from http_sink import HttpSink`` works without importing the ``tests`` package.
"""

import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

if "http_sink" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("http_sink", os.path.join(ROOT, "tests", "http_sink.py"))
    sys.modules["http_sink"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["http_sink"])
