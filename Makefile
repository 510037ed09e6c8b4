# One command sets up a fresh machine and runs the tests: `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export OMP_NUM_THREADS ?= 1
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: install sysdeps test demo clean-venv

install: $(VENV)/.installed

# System packages for the browser tests (Debian chromium). Installed when missing and apt-get can run as root;
# otherwise the browser tests are skipped with the reason "Chromium not installed".
sysdeps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "sysdeps: chromium could not be installed; browser tests will be skipped"; \
	  else echo "sysdeps: chromium missing and apt-get unavailable; browser tests will be skipped"; fi; }

$(VENV)/.installed: pyproject.toml constraints.txt Makefile scripts/install.sh
	PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/install.sh
	touch $@

test: install sysdeps
	$(BIN)/python -m pytest -q tests

# Open the Gradio chat on the built-in default model (URL printed). HOST/PORT/MODEL override the defaults.
HOST ?= 127.0.0.1
PORT ?= 7860
demo: install
	$(BIN)/trajvlm demo --host $(HOST) --port $(PORT) $(if $(MODEL),--model $(MODEL),)

clean-venv:
	rm -rf $(VENV)
