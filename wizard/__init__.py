from . import bj_api_sync_import_wizard
from . import bj_api_sync_client_key
from . import bj_api_sync_status
