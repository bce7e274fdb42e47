"""``python -m nuclib``: the same as the ``nuclib`` command (for environments without its script)."""

import sys

from nuclib.cli import main

sys.exit(main())
