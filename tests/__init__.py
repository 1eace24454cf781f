from . import test_foundation
from . import test_config_transfer
from . import test_inbound
from . import test_openapi
from . import test_mapping
from . import test_scripts
from . import test_tour
from . import test_outbound
