# The two commands of the quick start: `make demo` and `make test`. Each builds .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo evaluate-example test lint unit bench torture clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/bridge demo

evaluate-example: $(STAMP)
	$(BIN)/bridge --as-of 2026-10-20 --config config/examples/bridge.toml evaluate \
		--invoices config/examples/invoices.json \
		--history config/examples/history.json \
		--renegotiations config/examples/renegotiations.json

lint: $(STAMP)
	$(BIN)/ruff check bridge tests bench
	$(BIN)/mypy --strict bridge
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest -n 2 -q

test: lint unit

bench: $(STAMP)
	$(BIN)/python bench/policy.py
	$(BIN)/python bench/sync.py

# Full-size torture: 200 kill -9 trials and 10 syncs under 30% injected faults per provider
# (`make test` runs 30 trials and 1 faulted sync per provider).
torture: $(STAMP)
	rm -f .torture.jsonl
	TORTURE_TRIALS=200 TORTURE_FAULT_RUNS=10 TORTURE_TALLY=$(CURDIR)/.torture.jsonl $(BIN)/pytest -n 2 -q tests/torture
	$(BIN)/python tests/torture/report.py .torture.jsonl

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
