# Two entry points: `make demo` runs the main job, `make test` runs every check.
# Both create the virtual environment on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first and pinned: on machines with a local CPU wheel this takes it,
# and a later unpinned requirement can then not pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
OUT ?= out
# One torch thread: on a 2-core machine a second thread gave no speed-up when idle, and made
# each epoch 8 times slower while another process used a core (measured on ML-100K).
DEMO_THREADS ?= 1

.PHONY: demo test check-js browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[test]"
	# MovieLens-100K for offline use ships inside the RecBole wheel; only its data files are read.
	$(BIN)/pip install --quiet --no-deps "recbole==1.2.1"
	touch $(STAMP)

demo: $(STAMP)
	mkdir -p $(OUT)
	$(BIN)/recwidgets report --data ml-100k --model all --split leave-last-out --threads $(DEMO_THREADS) \
		--out $(OUT)/report.html --metrics-json $(OUT)/metrics.json --findings-json $(OUT)/findings.json
	@echo "Report written to $(abspath $(OUT)/report.html)"

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

check-js: node_modules/.package-lock.json
	npm run check

browser:
	@command -v chromium >/dev/null 2>&1 || test -x /usr/bin/chromium || { \
		if [ "$$(id -u)" = "0" ]; then apt-get update -qq && apt-get install -y -qq chromium; \
		else echo "Chromium is missing: install it with 'sudo apt-get install chromium'" >&2; exit 1; fi; }

test: $(STAMP) check-js browser
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) node_modules $(OUT) test-artifacts .pytest_cache
