from . import lib
from . import models
from . import services
from . import controllers
from . import wizard
