"""Allow ``python -m recwidgets report ...``."""

import sys

from recwidgets.cli import main

sys.exit(main())
