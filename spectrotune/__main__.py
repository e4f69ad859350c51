"""``python -m spectrotune``: the same command line as the ``spectrotune`` script."""

import sys

from spectrotune.cli import main

sys.exit(main())
