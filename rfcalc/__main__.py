"""`python -m rfcalc`: the same as the `rfcalc` command."""

import sys

from rfcalc.cli import main

sys.exit(main())
