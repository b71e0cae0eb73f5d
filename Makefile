# infuse: `make demo` sets up and runs the whole pipeline on examples/; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml setup.py | sha256sum | cut -c1-12)
RECIPE ?= recipes/demo.yaml
export HF_HUB_OFFLINE := 1
export PREFECT_HOME   := $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export INFUSE_PREFECT_PORT ?= 4200

.PHONY: install demo demo-stop server deploy serve screenshots test bench clean-runs

install: $(STAMP)

# The CPU wheel of torch goes in first, so no CUDA build is downloaded on a machine without a GPU
# (PyTorch's CPU index; where it is unreachable, plain `torch==2.13.0`, e.g. from a local wheel).
$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	if ! command -v nvidia-smi >/dev/null 2>&1; then \
	  $(BIN)/pip install -q --retries 0 --timeout 15 torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
	  || $(BIN)/pip install -q torch==2.13.0; fi
	$(BIN)/pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

server: install
	$(BIN)/infuse server start

demo: server
	PREFECT_API_URL=http://127.0.0.1:$(INFUSE_PREFECT_PORT)/api $(BIN)/infuse run $(RECIPE)
	@echo ""
	@echo "Artifacts: runs/demo   (try: $(BIN)/infuse show chunks --recipe $(RECIPE))"
	@echo "Prefect UI: http://127.0.0.1:$(INFUSE_PREFECT_PORT)   (stop it with: make demo-stop)"

# The recipe's nightly and full-run deployments, the work pools and the gpu limit (see deploy/README.md);
# then start a worker: .venv/bin/prefect worker start --pool infuse
deploy: server
	PREFECT_API_URL=http://127.0.0.1:$(INFUSE_PREFECT_PORT)/api $(BIN)/infuse deploy $(RECIPE)

# The demo's merged model behind an OpenAI-compatible API (vLLM on a GPU, transformers serve on CPU)
serve: install
	$(BIN)/infuse serve $(RECIPE) --merged

# docs/img/*.png from the Prefect UI of the last `make demo` (headless Chromium: apt-get install chromium)
screenshots: install
	$(BIN)/python docs/screenshots.py

demo-stop:
	-$(BIN)/infuse server stop

test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=25

bench: install
	$(BIN)/python bench/clean_bench.py
	$(BIN)/python bench/synth_bench.py

clean-runs:
	rm -rf runs
