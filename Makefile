# The portal's commands. `make run` and `make test` are all a newcomer needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PORT ?= 8000
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The first interpreter found that is Python >= 3.12 (pyenv reads .python-version).
PYTHON ?= $(shell for c in python3.13 python3.12 python3 python; do \
	command -v $$c >/dev/null 2>&1 && $$c -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
	&& { echo $$c; break; }; done)

.PHONY: help run test lint format check-python venv migrate seed bench bench-smoke clean debian-packages

# Debian packages: libharfbuzz-subset0 makes WeasyPrint's receipts several times faster (font
# subsetting otherwise dominates a render); chromium runs the browser tests; poppler-utils
# (pdftotext, pdfsig) lets tests and people look inside receipts.
DEBIAN_PACKAGES := libharfbuzz-subset0 fonts-dejavu-core poppler-utils chromium

help:
	@echo "make run    - install, migrate, load demo data and serve http://127.0.0.1:$(PORT)"
	@echo "make test   - run the whole test suite"
	@echo "make lint   - ruff checks and formatting check"
	@echo "make debian-packages - the system libraries receipts and browser tests need"
	@echo "make bench  - performance benchmarks on PostgreSQL (bench/README.md); bench-smoke: tiny"

check-python:
	@if [ -z "$(PYTHON)" ]; then \
		echo "Python 3.12 or newer is required but was not found (tried python3.13, python3.12, python3)."; \
		exit 1; fi

$(STAMP): pyproject.toml | check-python
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: check-python $(STAMP)

migrate: venv
	$(PY) manage.py migrate --no-input -v 0

seed: migrate
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(PY) manage.py seed_demo

run: seed
	@echo "Serving the portal at http://127.0.0.1:$(PORT) (sign in as employee@example.com / $${DEMO_PASSWORD:-portal-demo-2026})"
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(PY) manage.py runserver 127.0.0.1:$(PORT)

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Benchmarks against PostgreSQL (DATABASE_URL, a database named portal_bench*, dropped and
# recreated; default postgres://postgres@127.0.0.1:5432/portal_bench). See bench/README.md.
bench: venv
	$(PY) -m pip install --quiet -r bench/requirements.txt
	$(PY) -m bench.run --size full

# The same benchmarks at a tiny size (under a minute): checks that they work, not the figures.
bench-smoke: venv
	$(PY) -m pip install --quiet -r bench/requirements.txt
	$(PY) -m bench.run --size smoke

debian-packages:
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -q
	$(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(DEBIAN_PACKAGES)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles
