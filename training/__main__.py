"""`python -m training ...` is the `rftrain` command."""
import sys

from .cli import main

sys.exit(main())
