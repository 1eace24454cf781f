"""Database-free logic of bj_api_sync.

Nothing in this package imports ``odoo``: it is tested with plain pytest
(``tests/unit``) and called by the thin Odoo layer (``models``, ``services``,
``controllers``).
"""
