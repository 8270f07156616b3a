# Set-up and the two everyday commands. Each target creates .venv and installs on first use.
#   make demo   run every notebook headless on the synthetic default and print a summary
#   make test   run the test suite (real data in ../shared/data is used when present)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SHARED ?= ../shared/data
DATA   := $(if $(LESIONKIT_DATA),$(LESIONKIT_DATA),$(if $(wildcard $(SHARED)),$(abspath $(SHARED))))
PYTEST_ARGS ?= -n 2

.PHONY: install demo smoke test lab browser-deps clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -m venv $(VENV) || { echo "python3 -m venv failed: on Debian/Ubuntu run 'apt-get install python3-venv'"; exit 1; }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (lesionkit)"
	@touch $(STAMP)

demo: install
	$(BIN)/python -m lesionkit demo

smoke: install
	$(BIN)/python -m lesionkit demo --smoke

# Chromium for the widget viewer's browser test (Debian package; Playwright's own browser download is unreachable).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "could not install chromium: the browser test will be skipped"; \
	  elif sudo -n true 2>/dev/null; then sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing and we are not root: the browser test will be skipped (apt-get install chromium)"; fi; }

# The browser test runs in a pytest of its own, after the rest, so its JupyterLab kernel never competes with the
# notebook smoke runs for the cores. (It used to fail inside the xdist run: "Run All" reached a kernel still
# starting. It now waits for an idle kernel and passes there too; the separate run keeps its timing predictable.)
# Before the suite: the layering contract (pyproject's [tool.importlinter]: no package imports one above it) and the
# notebooks' parameters cells against their Config classes, so either drift fails CI on its own line.
test: install browser-deps
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m lesionkit params --check
	@export LESIONKIT_DATA="$(DATA)"; \
	  $(BIN)/python -m pytest -m "not browser" $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the suite is missing, which counts as a failure"; exit 1; fi; \
	  $(BIN)/python -m pytest -m browser; rc2=$$?; \
	  if [ $$rc -ne 0 ]; then exit $$rc; fi; exit $$rc2

# Jupyter refuses to start as root (containers, these machines) without --allow-root.
lab: install
	$(BIN)/jupyter lab --notebook-dir=. $(if $(filter 0,$(shell id -u)),--allow-root)

clean:
	rm -rf $(VENV) .pytest_cache
