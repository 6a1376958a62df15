"""``python -m scratchnet.serve``: see :mod:`scratchnet.serve.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
