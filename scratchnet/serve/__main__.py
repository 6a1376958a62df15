"""``python -m scratchnet.serve``: see :mod:`scratchnet.serve.cli`."""

import sys

from .cli import main

sys.exit(main())
