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

demo: setup
	$(BIN)/anomalist parse examples/logs

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check agent tools detectors eval tests

typecheck: setup
	$(BIN)/mypy detectors tools agent

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
