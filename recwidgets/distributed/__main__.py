"""Allow ``torchrun -m recwidgets.distributed train ...`` and ``python -m recwidgets.distributed``."""

import sys

from recwidgets.distributed.cli import main

sys.exit(main())
