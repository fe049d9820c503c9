# Open CDP: `make demo` runs the pipeline end to end on sample data; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
SAMPLE_CUSTOMERS ?= 5000
SAMPLE_SEED ?= 42
# Last day of the sample data: the generator writes up to it and `make demo` computes as of it, so
# the first KPIs and segments describe the data rather than the weeks after it ended.
SAMPLE_END_DATE ?= 2026-10-31

export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export CDP_LANDING_DIR ?= $(CURDIR)/data/landing
export CDP_WAREHOUSE ?= $(CURDIR)/data/warehouse.duckdb

.PHONY: install browser demo run ui test lint parse sample-data summary lock clean

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

install: $(VENV)/.installed

$(DAGSTER_HOME)/dagster.yaml: orchestration/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp orchestration/dagster.yaml $@

# Compile segments/*.yml and parse dbt with the env and --target the pipeline's dbt steps use,
# so their partial parse of this manifest holds (every `cdp run` prepares the same way first).
parse: install
	$(BIN)/cdp prepare

sample-data: install
	@if [ -z "$$(ls -A $(CDP_LANDING_DIR) 2>/dev/null)" ]; then \
		$(BIN)/python -m tools.sample_data --customers $(SAMPLE_CUSTOMERS) --seed $(SAMPLE_SEED) \
			--end-date $(SAMPLE_END_DATE) --out $(CDP_LANDING_DIR); \
	else echo "landing folder $(CDP_LANDING_DIR) already has data: keeping it"; fi

run: install parse $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/cdp run

summary: install
	$(BIN)/cdp summary

# The demo runs as of the sample's last day (CDP_AS_OF overrides it), then prints the summary.
demo: install parse $(DAGSTER_HOME)/dagster.yaml sample-data
	CDP_AS_OF=$${CDP_AS_OF:-$(SAMPLE_END_DATE)} $(BIN)/cdp run
	@$(BIN)/cdp summary

ui: install parse $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -m orchestration.definitions

lint: install
	$(BIN)/sqlfluff lint models macros data-tests

# Headless Chromium for the Dagster UI browser test (Debian package; best effort, needs root).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium not installed: the browser test of the Dagster UI will be skipped"; }

# Two pytest processes side by side, the second in a copy of the project (tools/test_shards.py);
# PYTEST_ARGS with test paths or -k runs one pytest in place.
test: install parse browser
	$(BIN)/python -m tools.test_shards $(PYTEST_ARGS)

lock:
	$(BIN)/uv pip compile pyproject.toml --quiet --python-version 3.11 -o requirements.lock

clean:
	rm -rf target logs data .dagster_home
