"""`python -m training ...` is the `rftrain` command (also under torchrun: `-m training`)."""

import sys

from .cli import main

sys.exit(main())
