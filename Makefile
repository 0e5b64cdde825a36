# Two commands on a fresh clone, with only Python (3.11+) and make: `make demo`, `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test test-fast bench lint typecheck clean worker

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	DJANGO_DEBUG=true $(BIN)/python -m project.demo

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench

# One RQ worker for background test calls (docs/operations.md); needs RQ_URL.
worker: $(VENV)/.installed
	@test -n "$$RQ_URL" || { echo "Set RQ_URL, e.g. RQ_URL=redis://127.0.0.1:6379/0" >&2; exit 2; }
	$(BIN)/python manage.py rqworker --job-class django_tasks_rq.Job \
		--worker-class rq.worker.SimpleWorker default

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy integrations

clean:
	rm -rf $(VENV) db.sqlite3 artifacts
