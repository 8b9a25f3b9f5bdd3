"""The services every package of the project shares, and nothing else: the command-line kit
(`commandline`: one parser class, one error shape, `run`), config fields with their flags
(`settings`), atomic files (`files`) and lazy package faces (`lazy`).

The layering: rfcalc <- netbuilder <- training (each may import the ones before it), and all
three import rfkit_base, which imports none of them (tests/rfkit_base/test_layers.py). Importing
it loads no torch: the commands answer `--help` and `--version` at once.
"""
