# The two commands: `make dev` runs the platform, `make test` passes the tests.
# Both install what is missing (Python packages with uv, npm packages, Kafka's jars,
# Postgres, stripe-mock), start the local stack and migrate; repeated runs reuse it all.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
# the stack on this machine: stripe-mock as the gateway, a development encryption key file
# (contracts/settings.py; anything else is production and refuses to run without keys)
export BILLING_ENV ?= local
UV := python3 -m uv
VENV := .venv
BILLING := $(VENV)/bin/billing

.PHONY: dev test lint unit setup install chromium stack migrate generate typecheck down bench

dev: setup
	$(BILLING) dev

# lint first: ruff and mypy need no service and answer in seconds
test: lint setup
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# the quick loop: the tests of pure rules, no service started or reached
unit: $(VENV)/.synced
	$(VENV)/bin/pytest -q -m unit -n 2

setup: install stack migrate

install: $(VENV)/.synced node_modules/.installed api/dashboard/node_modules/.installed chromium

$(VENV)/.synced: pyproject.toml uv.lock
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check uv
	$(UV) sync --frozen
	@touch $@

# Prisma's tooling, playwright-core, and Swagger UI copied into api/docs_assets for /schema
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error && npm run vendor --silent
	@touch $@

# the dashboard's charting library, from npm, copied into its static files
api/dashboard/node_modules/.installed: api/dashboard/package.json api/dashboard/package-lock.json
	cd api/dashboard && npm ci --no-audit --no-fund --loglevel=error && npm run vendor
	@touch $@

# headless Chromium for the dashboard's screenshot test, DejaVu Sans for invoice PDFs (Debian's packages)
chromium:
	@{ command -v chromium >/dev/null && test -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf; } || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core; }

stack: install
	$(BILLING) stack up

migrate: stack
	$(BILLING) migrate

down:
	$(BILLING) stack down

# After editing prisma/schema.prisma: regenerate the models and types, then
# `$(VENV)/bin/alembic revision --autogenerate -m "what changed"`.
generate: install
	prisma/generate.sh

typecheck: install
	npx --no-install tsc -p prisma/tsconfig.json

bench: setup
	$(VENV)/bin/python bench/write_path.py
