# make run | make test | make lint | make bench | make serve
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run serve test lint bench migrate

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

migrate: install
	DEBUG=1 $(PY) manage.py migrate --noinput

run: migrate
	DEBUG=1 $(PY) manage.py load_demo
	DEBUG=1 $(PY) manage.py runserver $(HOST):$(PORT)

# Production-like: gunicorn on DATABASE_URL (PostgreSQL), static files by whitenoise, production
# settings (they refuse DEBUG, a weak SECRET_KEY and ALLOWED_HOSTS=*). WORKERS defaults to 2n+1.
WORKERS ?= $(shell echo $$((2 * $$(nproc) + 1)))
serve: install
	DJANGO_SETTINGS_MODULE=config.settings_production $(PY) manage.py migrate --noinput
	DJANGO_SETTINGS_MODULE=config.settings_production $(PY) manage.py collectstatic --noinput -v0
	DJANGO_SETTINGS_MODULE=config.settings_production $(VENV)/bin/gunicorn config.wsgi \
		--bind $(HOST):$(PORT) --workers $(WORKERS) --access-logfile - \
		--access-logformat '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss'
# The access log names the path without its query string: authinfo= never reaches a log.

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install
	@set -e; for script in bench/*.py; do \
		[ -f "$$script" ] && [ "$$(basename $$script)" != "_common.py" ] || continue; \
		echo "# $$script" >&2; SECRET_KEY=bench $(PY) $$script; \
	done
