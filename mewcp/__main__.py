"""``python -m mewcp``: the command line (see `mewcp.cli`)."""

import sys

from mewcp.cli import main

sys.exit(main())
