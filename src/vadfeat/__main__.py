"""``python -m vadfeat`` is the ``vadfeat`` command."""

import sys

from vadfeat.cli import main

sys.exit(main())
