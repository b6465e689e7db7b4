# Two entry points: `make demo` and `make test`. Both create and use .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-long bench install clean

$(STAMP): pyproject.toml setup.py copslp/_kernels.c constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,cvxpy,torch,experiments]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py
	$(PY) -m bench.train --demo

# The whole suite; property tests run the bounded "ci" hypothesis profile.
test: $(STAMP)
	$(PY) -m pytest -q

# The long property runs: thousands of examples per property.
test-long: $(STAMP)
	HYPOTHESIS_PROFILE=long $(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m bench.scaling

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis demo_out bench/results *.egg-info
