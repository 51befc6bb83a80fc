# Set-up and the two main commands. Every target creates/reuses the virtual environment in .venv.
#   make demo     - the end-to-end demo on synthetic scans (the main job)
#   make test     - the whole test suite (what CI runs through .ci/run)
#   make examples - the example data + data_manifests/ of every shipped workflow (medseg synth examples)
# On a CUDA machine: create .venv and install your CUDA torch into it first; `make` keeps it.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.medseg-installed
TORCH_CPU ?= torch==2.13.0
DEMO_DIR ?= demo_out

.PHONY: install demo demo-quick examples test lint clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# torch first, so nothing pulls the multi-GB CUDA build; an existing torch (e.g. CUDA) is kept.
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_CPU)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,dicom-codecs,oct]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/medseg demo -o $(DEMO_DIR)

demo-quick: $(STAMP)
	$(BIN)/medseg demo --quick -o $(DEMO_DIR)-quick

examples: $(STAMP)
	$(BIN)/medseg synth examples

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check medseg tests benchmarks
	$(BIN)/ruff format --check medseg tests benchmarks

clean:
	rm -rf $(VENV) $(DEMO_DIR) $(DEMO_DIR)-quick .pytest_cache .ruff_cache
