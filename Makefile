# make run | make test | make lint | make worker | make bench | make serve
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEV_STAMP := $(VENV)/.installed-dev-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install install-dev run serve worker test lint bench migrate

# What serving needs (make run, make serve, make worker); the test and lint tools come with install-dev.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(DEV_STAMP)

install: $(STAMP)

install-dev: $(DEV_STAMP)

migrate: install
	DEBUG=1 $(PY) manage.py migrate --noinput

# The development server and one worker beside it (jobs, scheduled accrual); Ctrl-C stops both.
run: migrate
	DEBUG=1 $(PY) manage.py load_demo
	@echo "Admin: http://$(HOST):$(PORT)/admin/  (demo sign-in: admin / admin)"
	@echo "API docs: http://$(HOST):$(PORT)/api/docs/"
	@DEBUG=1 $(PY) manage.py worker --reload & worker=$$!; \
	trap 'kill $$worker $$(pgrep -P $$worker) 2>/dev/null' EXIT; \
	DEBUG=1 $(PY) manage.py runserver $(HOST):$(PORT)

# Production-like: gunicorn on DATABASE_URL (PostgreSQL), static files by whitenoise, production
# settings (they refuse DEBUG, a weak SECRET_KEY and ALLOWED_HOSTS=*). WORKERS defaults to 2n+1.
# Prometheus figures of all gunicorn workers add up in PROMETHEUS_MULTIPROC_DIR.
WORKERS ?= $(shell echo $$((2 * $$(nproc) + 1)))
SETTINGS ?= config.settings_production
METRICS_DIR ?= $(CURDIR)/.metrics-$(PORT)
serve: install
	DJANGO_SETTINGS_MODULE=$(SETTINGS) $(PY) manage.py migrate --noinput
	DJANGO_SETTINGS_MODULE=$(SETTINGS) $(PY) manage.py collectstatic --noinput -v0
	rm -rf $(METRICS_DIR) && mkdir -p $(METRICS_DIR)
	PROMETHEUS_MULTIPROC_DIR=$(METRICS_DIR) DJANGO_SETTINGS_MODULE=$(SETTINGS) \
		$(VENV)/bin/gunicorn config.wsgi -c config/gunicorn.py \
		--bind $(HOST):$(PORT) --workers $(WORKERS) --access-logfile - \
		--access-logformat '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss'
# The access log names the path without its query string: authinfo= never reaches a log.

# A worker alone (production layouts; as many as you like): the same environment as the servers.
worker: install
	DJANGO_SETTINGS_MODULE=$(SETTINGS) $(PY) manage.py worker

test: install-dev
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install-dev
	@set -e; for script in bench/*.py; do \
		[ -f "$$script" ] && [ "$$(basename $$script)" != "_common.py" ] || continue; \
		echo "# $$script" >&2; SECRET_KEY=bench $(PY) $$script; \
	done
