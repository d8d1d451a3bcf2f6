# Every target sets up what it needs: a fresh machine runs `make run` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

TEST_DEBS  := fonts-noto-color-emoji postgresql redis-server nginx-light libnginx-mod-http-js libnginx-mod-nchan ffmpeg chromium gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav
BENCH_DEBS := wrk ffmpeg icecast2 nginx-light libnginx-mod-http-js libnginx-mod-nchan postgresql redis-server
HLSJS      := src/tribune/web/static/vendor/hls.min.js
NOBLE      := src/tribune/web/static/vendor/noble-hashes

.PHONY: run test lint format bench cluster setup system-deps-test system-deps-bench clean

setup: $(STAMP) $(HLSJS) $(NOBLE)/sha2.js

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Tribune needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

# Browser packages from npm, copied into the package's static files (never committed):
# hls.js, and @noble/hashes' SHA-256 for the proof-of-work worker (ES modules that import
# each other by relative path, so they keep their names, in a folder of their own).
$(HLSJS) $(NOBLE)/sha2.js &: package.json package-lock.json
	@command -v npm >/dev/null || bash scripts/system-deps.sh nodejs npm
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(dir $(HLSJS)) $(NOBLE)
	cp node_modules/hls.js/dist/hls.min.js $(HLSJS)
	cp node_modules/@noble/hashes/LICENSE $(NOBLE)/
	cp node_modules/@noble/hashes/_md.js node_modules/@noble/hashes/_u64.js $(NOBLE)/
	cp node_modules/@noble/hashes/utils.js node_modules/@noble/hashes/sha2.js $(NOBLE)/

## run: start Tribune on http://127.0.0.1:8000 (SQLite in ./data, no other server),
## with a live demo Space whose speakers are synthetic
run: setup
	$(BIN)/tribune serve --demo

## cluster: the scaled shape on 127.0.0.1 (PostgreSQL, Redis, a media node, 2 API
## workers, 2 nginx edges); prints where to point a browser; Ctrl-C stops it
cluster: setup system-deps-test
	$(BIN)/tribune cluster up

## test: the whole suite, real PostgreSQL included
test: setup system-deps-test
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

## bench: benchmarks that print tables and write PNG plots to bench/results/
bench: setup system-deps-bench
	$(BIN)/python bench/join.py
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/fanout.py
	$(BIN)/python bench/flashcrowd.py
	$(BIN)/python bench/pow_browser.py

system-deps-test:
	@bash scripts/system-deps.sh $(TEST_DEBS)

system-deps-bench:
	@bash scripts/system-deps.sh $(BENCH_DEBS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
