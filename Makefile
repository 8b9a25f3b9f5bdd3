# Set-up on first use: a virtual environment in .venv with the project installed editable,
# and the system tools (graphviz's dot, Chromium for the book check) where we may apt-get.
VENV ?= .venv
PY := $(VENV)/bin/python
READY := $(VENV)/.ready

.PHONY: demo test book bench clean

demo: $(READY)
	$(VENV)/bin/rfcalc table examples/s9_net.py

test: $(READY)
	$(PY) -m pytest -q

book: $(READY)
	$(VENV)/bin/jupyter-book build book

bench: $(READY)
	$(PY) benchmarks/rfcalc_speed.py

$(READY): pyproject.toml constraints.txt scripts/setup-system.sh
	bash scripts/setup-system.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e '.[test,book]'
	touch $(READY)

clean:
	rm -rf $(VENV) book/_build
