# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv and install the project when needed; a second run skips the install.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT := results/demo

.PHONY: demo test lint bench install clean-demo docs

demo: $(STAMP)
	$(BIN)/harness run grids/demo.yaml --out $(DEMO_OUT) --until-conclusive --budget 330s --max-seeds 6
	$(BIN)/harness report $(DEMO_OUT) > /dev/null
	@echo "report: $(DEMO_OUT)/report.md and $(DEMO_OUT)/report.html (figures in $(DEMO_OUT)/figures)"

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# docs/results.md is generated from the schema of the registered plug-ins
docs: $(STAMP)
	$(BIN)/harness schema --write docs/results.md

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/do_vs_od.py
	$(BIN)/python bench/slimtrain_cost.py
	$(BIN)/python bench/scaling.py

install: $(STAMP)

# The install is redone only when the dependency declarations change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# a .venv made before the distribution was renamed still holds the old one
	$(BIN)/python -m pip uninstall --quiet --yes harness 2>/dev/null || true
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,mpi]'
	touch $(STAMP)

clean-demo:
	rm -rf $(DEMO_OUT)
