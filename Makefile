# Two commands for a new user: `make demo` and `make test`. Both set everything up first (idempotent):
# a virtualenv keyed on the pinned dependencies (cached outside the checkout, so re-runs and CI reuse it),
# this checkout installed into it, and the Delta jars, MovieLens-100K and model cached for offline runs.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
export BEHAVIORLM_CACHE ?= $(HOME)/.cache/behaviorlm
export PIP_DISABLE_PIP_VERSION_CHECK := 1
DEPS_HASH := $(shell sha1sum requirements.lock | cut -c1-12)
VENV ?= $(BEHAVIORLM_CACHE)/venv-$(DEPS_HASH)
BIN := $(VENV)/bin
# Spark's Python workers must use the same interpreter as the driver.
export PYSPARK_PYTHON := $(BIN)/python
CONF ?= conf/local.yaml
# One run id for every stage of a demo run; re-running the same day replaces that run's rows.
RUN_ID ?= demo-$(shell date -u +%Y%m%d)
PYTEST_ARGS ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help install chromium demo test lint submit-demo bench-recs bench-complete bench-predict bench-segments bench-coldstart bench-scale bench-intents bench-search bench-embed bench-embed-gpu bench-ann clean

help:
	@echo "make demo   - set up, then run the pipeline on MovieLens-100K and print the Delta tables it wrote"
	@echo "make test   - set up, then run the test suite"
	@echo "make lint   - ruff"
	@echo "make submit-demo - the ingest job through spark-submit, as on a cluster"
	@echo "make bench-embed - encoder throughput: raw vs Spark UDF (last line: bench-embed ...)"
	@echo "make bench-recs  - recommend + evaluate on ML-100K vs popularity and ALS (last line: bench-recs ...)"
	@echo "make bench-complete - complete on ML-100K: 5-fold rating CV, genres (last line: bench-complete ...)"
	@echo "make bench-ann   - similar-users vs exact vs MLlib BRP-LSH (last line: bench-ann ...)"
	@echo "make bench-predict  - next behaviour on ML-100K, leave-last-out, full ranking (last line: bench-predict ...)"
	@echo "make bench-intents  - CLINC150 intents with out-of-scope fallback (last line: bench-intents ...)"
	@echo "make bench-search   - genre queries over ML-100K items vs keyword TF-IDF (last line: bench-search ...)"
	@echo "make bench-coldstart - new items and new users on ML-100K, with and without content (last line: bench-coldstart ...)"
	@echo "make bench-scale - the whole pipeline on synthetic data at growing sizes: seconds per stage, driver memory (last line: bench-scale ...)"
	@echo "make bench-segments - segments on ML-100K: silhouette, genre NMI, interest hit@3 (last line: bench-segments ...)"

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip "setuptools>=70" wheel
	touch $@

install: $(VENV)/.created
	@# Installs the pinned dependencies (seconds when they are already there) and points the shared virtualenv at
	@# this checkout; then caches jars, data and model (skipped when cached).
	PYTHONWARNINGS=ignore $(BIN)/pip install -q --no-build-isolation -c requirements.lock -e '.[dev,multilingual]'
	$(BIN)/behaviorlm setup

demo: install
	$(BIN)/behaviorlm ingest --conf $(CONF) --run-id $(RUN_ID)
	@# Every stage after ingest, in one session; 2% of ratings and genres are hidden so complete has work to show.
	$(BIN)/behaviorlm run --conf $(CONF) --run-id $(RUN_ID) --force --set complete.holdout=0.02
	$(BIN)/behaviorlm tables --conf $(CONF)
	@echo "run report: $(abspath reports)/run-$(RUN_ID).html"

# The report test opens a run report in a real headless browser: Debian's Chromium, and a CJK font for the charts'
# labels, installed once when missing.
chromium:
	@command -v chromium >/dev/null && fc-list | grep -q "Droid Sans Fallback" || { $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-droid-fallback; }

test: install chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The MS Recommenders ML-100K protocol: stratified 75/25, k=10, tuned on validation, popularity + ALS beside.
bench-recs: install
	$(BIN)/python bench/recs_bench.py

# Surprise's ML-100K protocol for ratings (5-fold CV) beside global mean and ALS; genres from titles vs majority.
bench-complete: install
	$(BIN)/python bench/complete_bench.py

# Leave-last-out (ties by a seeded hash of user and item), HR/NDCG@10 over every unseen item, tuned on the last-but-one.
bench-predict: install
	$(BIN)/python bench/predict_bench.py

# New items (10 % lose their training interactions) and new users (10 % cut to 3 behaviours): content on and off.
bench-coldstart: install
	$(BIN)/python bench/coldstart_bench.py

# Ingest + every stage of `run` on the synthetic generator at 200, 1k and 6k users: growth exponents, driver memory.
bench-scale: install
	$(BIN)/python bench/scale_bench.py

# Cosine silhouette and NMI with the first genre of the item segments; the held-out last behaviour in the top-3 interests.
bench-segments: install
	$(BIN)/python bench/segments_bench.py

# CLINC150 (../shared/data/clinc150): train on train + oos_train, threshold chosen on val, reported on test + oos_test.
bench-intents: install
	$(BIN)/python bench/intents_bench.py

# ML-100K items embedded without genres; one plain-English query per genre; beside Spark ML HashingTF/IDF and random.
bench-search: install
	$(BIN)/python bench/search_bench.py

bench-embed: install
	$(BIN)/python bench/embed_bench.py

# BENCH_ANN_ARGS="--sizes 20000,100000,1000000" for the 1M run.
bench-ann: install
	$(BIN)/python bench/ann_bench.py $(BENCH_ANN_ARGS)

# Encoder core on a GPU machine that has torch + transformers but no Spark (see bench/encoder_gpu.py).
bench-embed-gpu-assets:
	mkdir -p .bench_assets/model
	cp $(BEHAVIORLM_CACHE)/models/all-MiniLM-L6-v2/{config.json,tokenizer.json,tokenizer_config.json,vocab.txt,special_tokens_map.json} .bench_assets/model/
	cp $(BEHAVIORLM_CACHE)/data/ml-100k/ml-100k.item .bench_assets/

bench-embed-gpu:
	python3 bench/encoder_gpu.py --assets .bench_assets

dist/behaviorlm.zip: $(shell find behaviorlm jobs udfs -name '*.py')
	@mkdir -p dist && rm -f $@ && $(BIN)/python -m zipfile -c $@ behaviorlm jobs udfs

submit-demo: install dist/behaviorlm.zip
	$(BIN)/spark-submit --master 'local[2]' --jars "$$(ls $(BEHAVIORLM_CACHE)/jars/delta-*/*.jar | paste -sd,)" \
		--py-files dist/behaviorlm.zip jobs/cli.py ingest --conf $(CONF)

clean:
	rm -rf data dist spark-warehouse .pytest_cache
