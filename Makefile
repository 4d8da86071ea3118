# Everyday commands; .ci/run is what CI runs.
PY ?= python

.PHONY: install serve test test-all lint format bench

install:  ## the package with the worker and test extras, editable
	$(PY) -m pip install -e '.[worker,test]'

serve:  ## API + one worker on SQLite at http://127.0.0.1:8000
	bumpfit serve

lint:  ## ruff format check, ruff, strict mypy: seconds
	ruff format --check .
	ruff check .
	mypy app workers

format:
	ruff format .
	ruff check --fix .

test: lint  ## linters, then the suite (SQLite and PostgreSQL)
	pytest

test-all: test  ## and the deployment tests (a wheel in a fresh venv, docker compose)
	pytest -m deploy

bench:  ## the benchmarks that need no service: one job, the sweep engine, pickup latency
	$(PY) -m bench.single_job
	$(PY) -m bench.pickup
