"""``python -m directionkit.cli``: the ``directionkit`` command."""

import sys

from directionkit.cli import main

sys.exit(main())
