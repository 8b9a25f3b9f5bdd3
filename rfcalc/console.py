"""The `rfcalc` console script and `python -m rfcalc`: `rfcalc.cli.main` in a process of its own.

Importing torch, torchvision and a model's own modules allocates millions of long-lived
objects and no garbage; Python's cyclic collector still walks them again and again while they
load. Holding it off (and skipping the walk at exit) takes `rfcalc table` of Inception-v3 from
3.5 s to under 3 s on 2 cores. `table` and `graph` are short and bounded (their memory is the
model's shapes), so the collector stays off for them; every other command gets it back, with
what was imported frozen out of its way, as soon as rfcalc itself is loaded.
"""

from __future__ import annotations

import gc
import sys
from typing import NoReturn

SHAPES_ONLY = ("table", "graph")  # commands whose whole run is an import and a walk


def main() -> NoReturn:
    """Run the rfcalc CLI on sys.argv and exit with its status."""
    gc.disable()
    from rfcalc.cli import main as cli
    from rfkit_base.commandline import exit_with

    if (sys.argv[1] if len(sys.argv) > 1 else None) not in SHAPES_ONLY:
        gc.freeze()
        gc.enable()
    exit_with(cli())
