# The README's two commands: `make demo` and `make test`. Both set up .venv first (idempotent).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# llama.cpp's default native build uses AMX on these CPUs and segfaults; build portable AVX2 instead.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
LLAMA_VERSION := 0.3.36
PYTEST_ARGS ?=

.PHONY: setup demo test lint typecheck clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# torch first: a CPU build of 2.13.0 is on this machine's disk; anything unpinned pulls a CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q "llama-cpp-python[server]==$(LLAMA_VERSION)"
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# The demo: the example store is built from examples/ (idempotent upserts; skipped while examples/ is unchanged),
# then one triage of the example scenario with the embedded LLM writes Markdown, HTML and JSON under $(DEMO_DIR).
DEMO_DIR := .anomalist/demo
demo: setup
	@if [ -f $(DEMO_DIR)/.store-built ] && [ -z "$$(find examples/incidents.jsonl examples/runbooks -newer $(DEMO_DIR)/.store-built)" ]; then \
		echo "example store in $(DEMO_DIR) is up to date with examples/"; \
	else \
		$(BIN)/anomalist --data-dir $(DEMO_DIR) incidents import examples/incidents.jsonl && \
		$(BIN)/anomalist --data-dir $(DEMO_DIR) runbooks import examples/runbooks && \
		touch $(DEMO_DIR)/.store-built; \
	fi
	$(BIN)/anomalist --data-dir $(DEMO_DIR) triage examples/logs --metrics examples/metrics.csv \
		--alert examples/alert.json --out $(DEMO_DIR)/report.md --out $(DEMO_DIR)/report.html \
		--out $(DEMO_DIR)/report.json
	@echo "open $(DEMO_DIR)/report.html (or read $(DEMO_DIR)/report.md)"

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check agent tools detectors eval tests

# mypy cannot follow setuptools' package-dir mapping: it checks the packages through a tree of links that has
# the installed layout (build/typecheck/anomalist/{agent,tools,...} -> the folders at the root).
typecheck: setup
	mkdir -p build/typecheck/anomalist
	for p in agent tools detectors eval prompts; do ln -sfn ../../../$$p build/typecheck/anomalist/$$p; done
	MYPYPATH=build/typecheck $(BIN)/mypy --explicit-package-bases -p anomalist.detectors -p anomalist.tools \
		-p anomalist.agent -p anomalist.eval

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
