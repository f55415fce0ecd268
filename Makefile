# lstm-zoo: every target is a thin wrapper over the `lstm-zoo` CLI.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export KERAS_BACKEND ?= tensorflow
# TensorFlow's C++ start-up lines are hidden by lstm-zoo itself
# (zoo/startup.py), under make or not.

.PHONY: install test test-fast lint models

install: $(STAMP)

# Re-installs only when the project's dependencies change.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# Two worker processes (pytest-xdist): the suite waits on servers and
# subprocesses much of the time. On 2 cores it measured 14 minutes against
# 21 run in one process. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
XDIST := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS))

# One thread per TensorFlow process under test (inherited by the processes
# tests start): two workers of TensorFlow's default thread pools on two cores
# oversubscribe them. On 2 cores a set of slow tests ran in 74 and 82 s with
# this against 111 s without.
TEST_ENV := TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1

test: install
	$(TEST_ENV) $(BIN)/python -m pytest $(XDIST)

# Everything but tests/e2e (servers, subprocesses, benchmarks) and the other
# end-to-end tests that train or search (marked slow): about 3 minutes on 2 cores.
test-fast: install
	$(TEST_ENV) $(BIN)/python -m pytest $(XDIST) --ignore=tests/e2e -m "not slow"

lint: install
	$(BIN)/ruff check zoo experiments tuning tests

models: install
	$(BIN)/lstm-zoo models

# === Experiments ===
# make train MODEL=gru DATA=airline ARGS="--epochs 50"
MODEL  ?= stacked_lstm
DATA   ?= airline
MODELS ?= all
TUNER  ?= random
TRIALS ?= 10
EPOCHS ?= 100
ARGS   ?=
CLI    := $(BIN)/lstm-zoo

.PHONY: train compare tune datasets ui demo tracking-server postgres forecast serve

train: install
	$(CLI) train --model $(MODEL) --data $(DATA) $(ARGS)

compare: install
	$(CLI) compare --data $(DATA) --models $(MODELS) $(ARGS)

tune: install
	$(CLI) tune --data $(DATA) --models $(MODELS) --tuner $(TUNER) \
		$(if $(filter hyperband,$(TUNER)),,--max-trials $(TRIALS)) --epochs $(EPOCHS) $(ARGS)

datasets: install
	$(CLI) datasets

ui: install
	$(CLI) ui $(ARGS)

# After `make demo`: the next 12 months past the data, with 80% and 95% intervals.
# make forecast FORECAST_MODEL=runs:/<run id>/model ARGS="--steps 24 --plot f.png"
FORECAST_MODEL ?= models:/lstm-zoo-airline-passengers@best
forecast: install
	$(CLI) forecast --model $(FORECAST_MODEL) $(ARGS)

# The model over HTTP on 127.0.0.1:5001; POST raw history to /invocations
# (see README, "Serving").
serve: install
	$(CLI) serve --model $(FORECAST_MODEL) $(ARGS)

# For teams and multi-worker searches: mlflow server on PostgreSQL (data in
# .tracking/), on 127.0.0.1:5000; prints the MLFLOW_TRACKING_URI to export.
# PostgreSQL comes from the system's packages (see `make postgres`).
tracking-server: install
	$(CLI) tracking-server $(ARGS)

# PostgreSQL from Debian/Ubuntu packages, if it is not there yet (needs root).
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null; \
	then echo "PostgreSQL is installed"; \
	else apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; fi

# The main job: a search over every family, window and transforms on the
# bundled airline data: about a minute on a 2-core CPU (epochs and patience
# follow the data size: at most 300 and 30 here; early stopping ends trials
# that start at their autoregressive term's least-squares fit far sooner).
demo: install
	$(CLI) tune --data airline --models all --tuner random --max-trials 12 \
		--ensemble 3 --name demo $(ARGS)

# === Benchmark (20 to 40 minutes on a 2-core CPU) ===
.PHONY: bench
# The benchmark installs what it compares with: Keras' JAX backend (the
# `bench` extra), PyTorch's CPU build and neuralforecast over it
# (benchmarks/install_torch.py; where one cannot be installed, the report
# says why in place of its column).
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python -m pip install --quiet --no-deps "statsforecast==2.1.1" "fugue==0.9.7"
	$(BIN)/python -m benchmarks.install_torch
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.bench $(ARGS)

# === Accuracy on real series against statsforecast's models ===
# The public set (benchmarks/public_set.py); writes
# benchmarks/results/accuracy-latest.{json,md}; ARGS="--series gas ldeaths".
.PHONY: accuracy accuracy-known
accuracy: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.accuracy $(ARGS)

# Global models on real panels (visnights, aus_accommodation) against
# statsforecast per series: benchmarks/results/panel-accuracy-latest.{json,md}.
.PHONY: accuracy-panels
accuracy-panels: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.panel_accuracy $(ARGS)

# Which forecasts should calibrate a refit model's intervals (issue 30): the
# train-only model's out-of-sample ones or the refit model's in-sample ones,
# on the public set: benchmarks/results/calibration-origins-latest.{json,md}.
.PHONY: accuracy-calibration
accuracy-calibration: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.calibration_origins $(ARGS)

# Series of known structure (airline, sine, generated) against the in-run
# ETS / SARIMA: benchmarks/results/known-structure-latest.{json,md}.
accuracy-known: install
	$(BIN)/python -m benchmarks.known_structure $(ARGS)
