# The two commands an analyst needs: `make report` and `make test`.
# Both set themselves up first: a virtual environment with the pinned dependencies
# (requirements.lock), the package installed in it, and a Jupyter kernel named
# "ipcreport" that papermill and JupyterLab find by name.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

DEMO      := data/demo
DEMO_PREV := data/demo-previous-quarter
DEMO_ARGS := --sites 9 --people 8000 --seed 2015
PARAMS    := params/demo.yaml
JOBS      ?=
AXE       := node_modules/axe-core/axe.min.js

.PHONY: report test setup demo lab lock clean chromium

# The demo builds last quarter's extract of the same programme first (its own run), so the
# briefings of this quarter show what changed since (reports/history.parquet keeps both).
report: $(STAMP) $(DEMO)/dataset.yaml $(DEMO_PREV)/dataset.yaml
	$(BIN)/ipcreport build $(DEMO_PREV) --params $(PARAMS) --run demo-previous-quarter $(if $(JOBS),--jobs $(JOBS))
	$(BIN)/ipcreport build $(DEMO) --params $(PARAMS) $(if $(JOBS),--jobs $(JOBS))

test: $(STAMP) $(AXE) chromium
	$(BIN)/python -m pytest -n 2 --dist loadgroup

# The browser tests need Debian's chromium (installed here when missing and apt can) and
# axe-core from npm (pinned in package-lock.json). Without them those tests skip, saying why.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } || \
	  echo "make: chromium could not be installed; the browser tests will be skipped"

$(AXE): package.json package-lock.json
	@command -v npm >/dev/null 2>&1 && npm ci --no-audit --no-fund --loglevel=error || \
	  echo "make: npm is missing or failed; the accessibility tests will be skipped"

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "ipcreport needs Python 3.11, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name ipcreport --display-name "Python (ipcreport)"
	touch $@

demo: $(DEMO)/dataset.yaml

$(DEMO)/dataset.yaml: | $(STAMP)
	$(BIN)/ipcreport synth $(DEMO) $(DEMO_ARGS)

$(DEMO_PREV)/dataset.yaml: $(DEMO)/dataset.yaml
	$(BIN)/ipcreport snapshot $(DEMO) $(DEMO_PREV) --months-before 3

lab: $(STAMP) $(DEMO)/dataset.yaml
	$(BIN)/jupyter lab notebooks/

lock: $(STAMP)
	( echo "# Every package make installs, pinned: generated with 'pip freeze' from a working .venv (Python 3.11)."; \
	  echo "# Regenerate with: make lock"; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^ipcreport' ) > requirements.lock

clean:
	rm -rf $(VENV) reports work $(DEMO) $(DEMO_PREV) node_modules test-artifacts
