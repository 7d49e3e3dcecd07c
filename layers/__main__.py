"""python -m layers: the chanlayers command line."""

import sys

from .cli import main

sys.exit(main())
