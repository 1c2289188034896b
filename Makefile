# Set-up is part of every target: a fresh clone needs only python3.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?= -n 2 --dist loadgroup

.PHONY: demo test docs results clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the package metadata changes (the install is editable).
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) benchmarks/paper_tables.py --models 5

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# The docs extra goes into the same .venv, again only when pyproject changes.
DOCS_STAMP := $(VENV)/.docs-stamp
$(DOCS_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench,docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

# The result tables the documentation includes (docs/results/*.md, each with
# its JSON), rewritten by the benchmark scripts. Quick sizes by default (10 to
# 15 minutes on 2 cores); FULL=1 runs every script at its full size (the
# paper's 30 models per setup and so on: an hour or more). `make docs` only
# reads these files, it never runs a benchmark.
RESULTS := docs/results
SIZE := $(if $(FULL),--full,--quick)
results: $(STAMP)
	$(PY) benchmarks/construction.py --out $(RESULTS) --no-figure
	$(PY) benchmarks/paper_tables.py $(SIZE) --with-lm --out $(RESULTS) --no-figure
	$(PY) benchmarks/stage2_sweep.py --out $(RESULTS)
	$(PY) benchmarks/speed.py $(SIZE) --out $(RESULTS)
	$(PY) benchmarks/regions.py $(SIZE) --out $(RESULTS) --no-figure
	$(PY) benchmarks/beyond_convex.py $(SIZE) --out $(RESULTS)
	$(PY) benchmarks/beyond_convex.py $(SIZE) --lm-steps 100 --out $(RESULTS)
	$(PY) benchmarks/classify.py $(SIZE) --out $(RESULTS) --no-figure
	$(PY) benchmarks/stability.py $(SIZE) --out $(RESULTS)
	$(PY) benchmarks/several_inputs.py $(SIZE) --out $(RESULTS)
	$(PY) benchmarks/first_call.py $(SIZE) --out $(RESULTS)
	$(PY) benchmarks/solve.py --out $(RESULTS)

clean:
	rm -rf $(VENV) site out .pytest_cache .hypothesis
