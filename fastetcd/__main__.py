"""``python -m fastetcd``: the same as the ``fastetcd`` command."""

import sys

from .cli import main

sys.exit(main())
