"""The text-like columns of every table of the current schema: what the secret scans read
(tests/test_security.py in the Odoo suite, tests/fuzz/campaign.py against a live server).
Standard library only: the campaign loads it without Odoo.
"""

from collections import defaultdict

TEXT_COLUMNS = """
    SELECT c.table_name, c.column_name, c.data_type
      FROM information_schema.columns c
      JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
     WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
       AND c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'bytea')
     ORDER BY 1, 2
"""


def text_columns(cr):
    """``{table: [(column, data_type), ...]}`` of the database ``cr`` (an Odoo or psycopg2 cursor) is on."""
    cr.execute(TEXT_COLUMNS)
    columns = defaultdict(list)
    for table, column, kind in cr.fetchall():
        columns[table].append((column, kind))
    return columns
