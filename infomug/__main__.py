"""``python -m infomug``: the same as the ``infomug`` console script."""

import sys

from .cli import main

sys.exit(main())
