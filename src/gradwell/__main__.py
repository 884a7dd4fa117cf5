"""``python -m gradwell``: the ``gradwell`` command."""

import sys

from .cli import main

sys.exit(main())
