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

.PHONY: help run test lint typecheck format check-python venv system-libraries migrate seed bench \
	bench-smoke clean debian-packages

# The system libraries WeasyPrint loads to render receipts (Debian and Ubuntu names): GLib and
# Pango, and HarfBuzz's subsetter, without which a render is several times slower and WeasyPrint
# warns (an error in the test run). `make run` and `make test` install them when they are missing.
SYSTEM_LIBRARIES := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core
# Optional: chromium runs the browser tests, poppler-utils (pdftotext, pdfsig) lets tests and
# people look inside receipts; libnss3-tools (certutil) and jq run the audit package README's
# trust and commitment recipes. Tests that need them skip, with the reason, when they are missing.
OPTIONAL_PACKAGES := poppler-utils chromium libnss3-tools jq
DEBIAN_PACKAGES := $(SYSTEM_LIBRARIES) $(OPTIONAL_PACKAGES)
# apt-get as root, through sudo otherwise.
APT_GET := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get
# Succeeds when WeasyPrint finds every library it needs (a missing one is an OSError or a warning).
PROBE_RECEIPT_LIBRARIES := $(PY) -W error -c 'import weasyprint'
# The demo runs with debug pages, and its links (emails, receipts' verification URL and QR code)
# point at the port it serves.
RUN_ENV := DJANGO_DEBUG=$${DJANGO_DEBUG:-1} PORTAL_BASE_URL=$${PORTAL_BASE_URL:-http://127.0.0.1:$(PORT)}

help:
	@echo "make run    - install, migrate, load demo data and serve http://127.0.0.1:$(PORT)"
	@echo "make test   - run the whole test suite"
	@echo "make lint   - ruff checks, formatting check and the import layers"
	@echo "make typecheck - mypy over the domain packages"
	@echo "make debian-packages - also Chromium and poppler-utils, for browser and PDF tests"
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

# Receipts cannot be issued without these libraries, so run and test install them first: with
# apt-get where there is one (as root or through sudo), or stop with one line naming them.
system-libraries: venv
	@$(PROBE_RECEIPT_LIBRARIES) >/dev/null 2>&1 || { \
		echo "Installing the system libraries receipts need: $(SYSTEM_LIBRARIES)"; \
		if command -v apt-get >/dev/null 2>&1 && { [ "$$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then \
			$(APT_GET) update -q && $(APT_GET) install -y -q --no-install-recommends $(SYSTEM_LIBRARIES); \
		fi; \
		$(PROBE_RECEIPT_LIBRARIES) >/dev/null 2>&1 || { \
			echo "Receipts need Pango and HarfBuzz's subsetter: install them (Debian/Ubuntu: sudo apt-get install $(SYSTEM_LIBRARIES); macOS: brew install pango), then run make again."; \
			exit 1; }; }

migrate: system-libraries
	$(PY) manage.py migrate --no-input -v 0

seed: migrate
	$(RUN_ENV) $(PY) manage.py seed_demo

run: seed
	@# Receipts a failed render left without one (a library was missing) are issued now.
	$(RUN_ENV) $(PY) manage.py recover_work --now
	@# The ledger checked once, as a deployment's scheduler does hourly: the damage banner and
	@# the exports' warning read the last check. A damaged ledger is shown, not a stop.
	-$(RUN_ENV) $(PY) manage.py verify_ledger
	@echo "Serving the portal at http://127.0.0.1:$(PORT) (sign in as employee@example.com / $${DEMO_PASSWORD:-portal-demo-2026})"
	$(RUN_ENV) $(PY) manage.py runserver 127.0.0.1:$(PORT)

test: system-libraries
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-logo

typecheck: venv
	$(VENV)/bin/mypy

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
	$(APT_GET) update -q
	$(APT_GET) install -y -q $(DEBIAN_PACKAGES)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles
