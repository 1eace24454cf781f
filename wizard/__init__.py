from . import bj_api_sync_import_wizard
