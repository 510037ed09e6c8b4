# One command sets up a fresh machine and runs the tests: `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export OMP_NUM_THREADS ?= 1
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: install test clean-venv

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt Makefile scripts/install.sh
	PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/install.sh
	touch $@

test: install
	$(BIN)/python -m pytest -q tests

clean-venv:
	rm -rf $(VENV)
