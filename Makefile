# The few verbs a newcomer needs. `make demo` and `make test` are the README's two commands.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATE ?=
N ?= 10000
MATCH_N ?= 100000

# Pinned dependencies with their sha256 hashes (`make lock` writes them; README: Installing).
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock
# The lock tool lives outside the project's venv.
LOCKTOOL ?= /tmp/paperboy-locktool
UV_VERSION := 0.13.9
LOCK_ARGS ?=
UV_COMPILE = $(LOCKTOOL)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-unknown-linux-gnu --custom-compile-command 'make lock' $(LOCK_ARGS)
# Locked beside the dependencies: pip, and setuptools (the build-system's requires), which
# builds the project itself.
TOOLS := 'pip' 'setuptools>=68'

.PHONY: install lock demo test bench lint fmt run worker beat clean

install: $(STAMP)

# Every dependency comes from the lock, as a wheel whose sha256 is in it (pip refuses
# anything else); the project itself is then installed without dependencies, built by the
# locked setuptools. `pip check` fails when pyproject.toml asks for what the lock lacks.
# Re-installs only when the lock or pyproject.toml changes, so a second `make install` is quick.
$(STAMP): pyproject.toml $(DEV_LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --only-binary :all: -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@$(BIN)/python -m pip check || { echo "$(DEV_LOCK) does not match pyproject.toml: run make lock"; exit 1; }
	@touch $(STAMP)

# Re-resolves pyproject.toml into both locks, keeping every pin it can.
# `make lock LOCK_ARGS=--upgrade` (or `LOCK_ARGS='--upgrade-package django'`) moves pins on.
lock:
	@$(LOCKTOOL)/bin/uv --version 2>/dev/null | grep -qF '$(UV_VERSION)' || { \
	  $(PYTHON) -m venv $(LOCKTOOL) && \
	  $(LOCKTOOL)/bin/python -m pip install --quiet 'uv==$(UV_VERSION)'; }
	printf '%s\n' $(TOOLS) | $(UV_COMPILE) pyproject.toml - -o $(LOCK)
	printf '%s\n' $(TOOLS) | $(UV_COMPILE) pyproject.toml - --extra dev -c $(LOCK) -o $(DEV_LOCK)

demo: install
	$(BIN)/python manage.py migrate --verbosity 0
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py run_daily --date $(or $(DATE),latest)

test: install
	$(BIN)/python -m pytest

# Matching and sending at MATCH_N (100,000) subscribers: match time, the day spread over 24
# send hours against one hour, then digests/s to the null backend from one sender process
# per core and their peak RSS. Then one edition end to end for N subscribers (bench_digest).
# On PostgreSQL when DATABASE_URL is set (not the tests' database), else a temporary SQLite.
SENDERS ?= $(shell nproc)
bench: install
	$(BIN)/python bench/bench_matching.py --subscribers $(MATCH_N) --no-scoring --send $(SENDERS) \
	    $(if $(DATABASE_URL),--database-url $(DATABASE_URL))
	$(BIN)/python bench/bench_digest.py --subscribers $(N) \
	    $(if $(DATABASE_URL),--database-url $(DATABASE_URL))

# A million subscribers planned, matched and sent to the null backend: the five-minute target.
.PHONY: bench-1m
bench-1m: install
	$(BIN)/python bench/bench_matching.py --subscribers 1000000 --no-scoring --hours 0 \
	    --send $(SENDERS) $(if $(DATABASE_URL),--database-url $(DATABASE_URL))

# Paperboy's Celery workers against django-newsletter 1.2.1, through one smtp-sink
# (bench/README.md). Needs PostgreSQL and Redis on 127.0.0.1; `make bench-smtp SMTP_N=2000`.
SMTP_N ?= 20000
.PHONY: bench-smtp
bench-smtp: install
	$(BIN)/python bench/bench_smtp.py --messages $(SMTP_N)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports

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
