# Set-up on first use: a virtual environment in .venv with the project installed editable,
# and the system tools (graphviz's dot, Chromium for the book check) where we may apt-get.
# Then `. .venv/bin/activate` puts rfcalc, netbuilder and rftrain on PATH.
VENV ?= .venv
PY := $(VENV)/bin/python
READY := $(VENV)/.ready

.PHONY: demo test book lab bench mutation mutation-recheck clean

demo: $(READY)
	$(VENV)/bin/rfcalc table examples/s9_net.py

# Coverage is reported for information (one line), never a gate.
test: $(READY)
	$(VENV)/bin/ruff check --quiet . && $(VENV)/bin/ruff format --check --quiet .
	$(PY) -m pytest -q --cov=rfcalc --cov=netbuilder --cov=training --cov=rfkit_base --cov-report=
	@echo "coverage of rfcalc, netbuilder, training, rfkit_base: $$($(PY) -m coverage report --format=total)%"

book: $(READY)
	$(VENV)/bin/jupyter-book build book

# JupyterLab on the course: the venv's own kernel (env paths before any user-level kernel of
# the same name), and the MyST chapters (book/*.md) open as notebooks through jupytext.
lab: $(READY)
	install -D -m 644 scripts/jupyterlab/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	JUPYTER_PREFER_ENV_PATH=1 $(VENV)/bin/jupyter lab $$([ "$$(id -u)" = 0 ] && echo --allow-root) \
		book/01_rf_arithmetic.md

bench: $(READY)
	$(PY) benchmarks/rfcalc_speed.py

# Mutation testing (not part of `make test`; tens of minutes): mutmut mutates the modules in
# pyproject.toml's [tool.mutmut], from a clean mutants/ each time, then prints the per-module
# score. MUTATE narrows it to mutant-name globs: make mutation MUTATE='netbuilder.budget*'
MUTATE ?=
mutation: $(READY)
	rm -rf mutants && mkdir mutants
	nice $(VENV)/bin/mutmut run --max-children 2 $(MUTATE) >mutants/run.log 2>&1; \
	  status=$$?; $(PY) scripts/mutation_summary.py; exit $$status

# The mutants of an existing mutants/ run again (not checked or survived), in forks of one
# warmed-up process: after tests were added for survivors, or where mutmut's own runner is
# too slow to finish. RECHECK_TESTS: test files written since mutmut's stats run.
# make mutation-recheck MUTATE='rfcalc.geometry*' RECHECK_TESTS=tests/rfcalc/test_geometry.py
RECHECK_TESTS ?=
mutation-recheck: $(READY)
	nice $(PY) scripts/mutation_recheck.py $(or $(MUTATE),'*') --tests $(RECHECK_TESTS) \
	  && $(PY) scripts/mutation_summary.py

$(READY): pyproject.toml constraints.txt scripts/setup-system.sh
	bash scripts/setup-system.sh
	test -x $(PY) || python3 -m venv $(VENV)
	@# pip's output (a wall of "Location ... is ignored" warnings) only if it fails
	$(PY) -m pip install -q -c constraints.txt -e '.[test,book,lab]' > $(VENV)/pip.log 2>&1 \
		|| { cat $(VENV)/pip.log; exit 1; }
	touch $(READY)

clean:
	rm -rf $(VENV) book/_build mutants .coverage
