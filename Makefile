# The few verbs a newcomer needs. `make demo` and `make test` are the README's two commands.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATE ?=
N ?= 10000
MATCH_N ?= 100000

.PHONY: install demo test bench lint fmt run worker beat clean

install: $(STAMP)

# Re-installs only when pyproject.toml changes, so a second `make install` is quick.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: install
	$(BIN)/python manage.py migrate --verbosity 0
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py run_daily --date $(or $(DATE),latest)

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/bench_digest.py --subscribers $(N)
	$(BIN)/python bench/bench_matching.py --subscribers $(MATCH_N)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

run: install
	$(BIN)/python manage.py migrate --verbosity 0
	$(BIN)/python manage.py runserver

worker: install
	$(BIN)/celery -A paperboy worker --loglevel INFO

beat: install
	$(BIN)/celery -A paperboy beat --loglevel INFO

clean:
	rm -rf var/outbox var/*.sqlite3 test-artifacts
