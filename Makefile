# The two commands of the quick start: `make demo` and `make test`. Each builds .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Every dependency (runtime and test), pinned with hashes: the venv (so `make test` and .ci/run) installs
# exactly these, then bridge itself without dependencies, built by the pinned setuptools, then the emulators
# (bridge_sandbox, a distribution of its own in sandbox/: the demo, tests and benchmarks need them; bridge's
# wheel never holds them).
LOCK := requirements.lock

.PHONY: demo evaluate-example test lint unit bench peers torture clean lock

$(STAMP): pyproject.toml sandbox/pyproject.toml $(LOCK)
	@echo "First use: building $(VENV) from $(LOCK) (every dependency pinned with hashes; about half a minute)."
	$(PYTHON) -m venv $(VENV)
	@# pip is quiet while it installs: a line every 4 s says the first make is still at it.
	@echo "$(BIN)/pip install --quiet --require-hashes -r $(LOCK)"; \
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK) & pid=$$!; \
	while kill -0 $$pid 2>/dev/null; do sleep 4; kill -0 $$pid 2>/dev/null && echo "  still installing the pinned dependencies..."; done; \
	wait $$pid
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e ./sandbox
	touch $(STAMP)

# Re-resolve requirements.lock from pyproject.toml (newest releases the floors allow, hashes of every file):
# run after changing a dependency, or to take security releases; commit the result. pip-tools runs in a
# throwaway venv; index URLs are not written into the lock (pip's own config decides where files come from).
lock:
	rm -rf .lock-tools
	$(PYTHON) -m venv .lock-tools
	.lock-tools/bin/pip install --quiet pip-tools
	.lock-tools/bin/pip-compile --quiet --upgrade --extra test --generate-hashes --strip-extras --allow-unsafe \
		--no-emit-index-url --no-emit-find-links --no-emit-trusted-host --output-file $(LOCK) pyproject.toml
	rm -rf .lock-tools

demo: $(STAMP)
	$(BIN)/bridge demo

evaluate-example: $(STAMP)
	$(BIN)/bridge --as-of 2026-10-20 --config config/examples/bridge.toml evaluate \
		--invoices config/examples/invoices.json \
		--history config/examples/history.json \
		--renegotiations config/examples/renegotiations.json

lint: $(STAMP)
	$(BIN)/ruff check bridge sandbox tests bench
	$(BIN)/mypy --strict bridge sandbox/bridge_sandbox
	$(BIN)/lint-imports

# The 25 slowest tests are listed at the end: where to look first when the suite grows past its ~10 minutes.
unit: $(STAMP)
	$(BIN)/pytest -n 2 -q --durations=25

test: lint unit

bench: $(STAMP)
	$(BIN)/python bench/policy.py
	$(BIN)/python bench/sync.py
	$(BIN)/python bench/messages.py
	$(BIN)/python -m bench.peers
	$(BIN)/python -m bench.endtoend
	$(BIN)/python -m bench.apply
	$(BIN)/python bench/serve.py

# Third-party clients against the emulators: builds .venv-peers/ (tap-quickbooks and tap-xero, one venv each,
# never project dependencies) on first use, then checks each tap's full and incremental sync on a small book.
# Once .venv-peers/ exists, `make test` runs the same check (tests/sandbox/test_peer_clients.py).
peers: $(STAMP)
	$(BIN)/python -m bench.peers --conformance --invoices 250 --payments 250 --changes 5

# Full-size torture: 200 kill -9 trials and 10 syncs under 30% injected faults per provider, and on the SMTP
# channel 120 kill -9 trials and 10 syncs under 30% SMTP faults per provider
# (`make test` runs 30 trials and 1 faulted sync per provider; 6 SMTP kill trials and 1 SMTP faulted sync each).
torture: $(STAMP)
	rm -f .torture.jsonl
	TORTURE_TRIALS=200 TORTURE_FAULT_RUNS=10 TORTURE_SMTP_TRIALS=120 TORTURE_SMTP_FAULT_RUNS=10 \
		TORTURE_TALLY=$(CURDIR)/.torture.jsonl $(BIN)/pytest -n 2 -q tests/torture
	$(BIN)/python tests/torture/report.py .torture.jsonl

clean:
	rm -rf $(VENV) .venv-peers .lock-tools .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist sandbox/build
