# Baton: `make run` serves the demo, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8000
STAMP  := $(VENV)/.installed
# Links in mails and printed URLs follow the port unless BATON_BASE_URL is set.
export BATON_BASE_URL ?= http://127.0.0.1:$(PORT)
# Settings refuse DEBUG off without SECRET_KEY. The make targets (a laptop
# demo, the tests, the benchmark) use a random key made once per checkout in
# var/dev-secret-key unless SECRET_KEY is set; production sets its own.
ifndef SECRET_KEY
export SECRET_KEY := $(shell test -s var/dev-secret-key || { mkdir -p var && $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))' > var/dev-secret-key; }; cat var/dev-secret-key)
endif

.PHONY: run test test-faults test-pg bench bench-quick venv migrate demo clean

venv: $(STAMP)

# pip's output goes to a log, shown only when it fails (a pipe into grep
# would hide pip's exit status).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip > $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	$(PY) -m pip install --quiet -e '.[dev]' > $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	$(PY) -c "import django, celery, cel, rest_framework, pytest, pytest_django, playwright, psycopg, redis"
	touch $(STAMP)

migrate: venv
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py load_demo

run: demo
	PORT=$(PORT) $(PY) manage.py serve --port $(PORT)

# pytest exits non-zero on any failure and with 5 when it collects nothing.
test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

test-faults: venv
	$(PY) -m pytest -m faults $(PYTEST_ARGS)

# The whole suite with Django on a private PostgreSQL (see tests/servers.py).
test-pg: venv
	BATON_TEST_POSTGRES=1 $(PY) -m pytest $(PYTEST_ARGS)

bench: venv
	$(PY) bench/run.py

bench-quick: venv
	$(PY) bench/run.py --quick

clean:
	rm -rf var/ test-output/
