"""`python -m rfcalc`: the same as the `rfcalc` command."""

from rfcalc.console import main

main()
