"""Tells the chapters' kernels where this build's HTML goes, so that a chapter writing a page
for the site (4.1's explorer) writes it there and never into the source tree.

Sets RFKIT_BOOK_HTML to the builder's output folder before any notebook runs; the kernels
myst-nb starts inherit it. Outside a build the variable is unset.
"""

import os

from sphinx.application import Sphinx

ENV = "RFKIT_BOOK_HTML"


def _export(app: Sphinx) -> None:
    os.environ[ENV] = str(app.outdir)


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", _export)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
