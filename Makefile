# Infomediary: `make run` serves a demo on http://127.0.0.1:5000, `make test` runs every check.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export INFOMEDIARY_INSTANCE_PATH ?= $(CURDIR)/instance

.DEFAULT_GOAL := help
.PHONY: help install dev run init demo test lint format typecheck contracts pytest mutation screenshots bench lock clean translations

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The locks pin every package, with hashes, so what runs is what CI tested; the project
# itself is installed on top without resolving anything again.
$(VENV)/.installed: pyproject.toml requirements/app.lock | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/app.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

$(VENV)/.dev-installed: pyproject.toml requirements/dev.lock | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e '.[dev]'
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed ## Create the virtualenv and install the app

dev: $(VENV)/.dev-installed ## Install the app with the dev extra

init: install ## Create the instance (keyring, SQLite schema); idempotent
	$(BIN)/infomediary init

demo: init ## Seed the demo logins, a demo supplier and 2,000 synthetic customers
	$(BIN)/infomediary demo --customers 2000

run: demo ## Set up everything and serve the dashboard on http://127.0.0.1:5000
	$(BIN)/infomediary serve --host 127.0.0.1 --port 5000

test: dev lint typecheck contracts pytest ## Lint, format check, type check, layer contracts and the whole test suite

lint: dev ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: dev ## Apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

contracts: dev ## The layer contracts (import-linter, configured in pyproject.toml)
	$(BIN)/lint-imports

typecheck: dev ## mypy (strict for policies/ and connectors/)
	$(BIN)/mypy

pytest: dev ## The test suite (PostgreSQL too when INFOMEDIARY_TEST_DATABASE_URL is set), with branch coverage
	$(BIN)/pytest --cov --cov-report=term:skip-covered

# Each pass starts from an empty work directory, so the score never comes from a stale cache.
# policies/ uses [tool.mutmut] as it stands (its results stay in mutants/, for `mutmut show`);
# connectors/ runs in build/mutation-connectors/ with that table's "policies" read as "connectors".
mutation: dev ## Mutation testing (mutmut; slow, not in `make test`): policies/, then connectors/ once it has tests
	@set -e; mutmut="$(abspath $(BIN))/mutmut"; python="$(abspath $(BIN))/python"; \
	score='import json, sys; s = json.load(open(sys.argv[2])); k, t = s.pop("killed"), s.pop("total"); \
	  others = ", ".join(f"{n} {key}" for key, n in s.items() if n); \
	  print(f"mutation score of {sys.argv[1]}: {k} of {t} mutants killed ({100 * k / max(t, 1):.1f}%)" + (f"; {others}" if others else ""))'; \
	one_pass() { \
	  rm -rf mutants; mkdir mutants; \
	  echo "mutation: mutating $$1/ under $$2/ (progress in $$PWD/mutants/run.log)"; \
	  "$$mutmut" run > mutants/run.log 2>&1 || { tail -n 40 mutants/run.log; exit 1; }; \
	  "$$mutmut" export-cicd-stats > /dev/null; \
	  "$$python" -c "$$score" "$$1/" mutants/mutmut-cicd-stats.json; \
	  "$$mutmut" results; \
	}; \
	one_pass policies tests/unit/policies; \
	if [ -z "$$(find tests/unit/connectors -name 'test_*.py' 2>/dev/null)" ]; then \
	  echo "mutation: tests/unit/connectors/ has no tests yet, so connectors/ is skipped"; \
	else \
	  rm -rf build/mutation-connectors; mkdir -p build/mutation-connectors; \
	  sed '/^\[tool\.mutmut\]/,/^\[/s/policies/connectors/g' pyproject.toml > build/mutation-connectors/pyproject.toml; \
	  ln -s ../../connectors ../../tests build/mutation-connectors/; \
	  cd build/mutation-connectors; one_pass connectors tests/unit/connectors; \
	fi

# The catalogues: messages.pot from the templates and the web edge's Python (babel.cfg), each
# language's messages.po updated from it, then compiled to the messages.mo the app loads (the
# .mo files are committed, so a fresh clone runs without this step).
TRANSLATIONS := infomediary/translations
translations: dev ## Extract the site's messages, update every catalogue and compile them
	$(BIN)/pybabel extract -F babel.cfg -k lazy_gettext --no-location --sort-by-file --project Infomediary -o $(TRANSLATIONS)/messages.pot .
	$(BIN)/pybabel update -i $(TRANSLATIONS)/messages.pot -d $(TRANSLATIONS) --ignore-obsolete --no-fuzzy-matching
	$(BIN)/pybabel compile -d $(TRANSLATIONS) --statistics

screenshots: dev ## Refresh the README's screenshots through the browser tests
	INFOMEDIARY_SCREENSHOT_DIR=$(CURDIR)/docs/screenshots $(BIN)/pytest -m browser

lock: | $(BIN)/python ## Re-resolve requirements/*.lock from pyproject.toml (needs the package index)
	$(BIN)/python -m pip install --quiet 'uv>=0.5,<1'
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes --no-header -q -o requirements/app.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes --no-header -q -o requirements/dev.lock
	@for f in requirements/app.lock requirements/dev.lock; do \
	  sed -i '1i # Exact versions installed by `make install` / `make dev` (and so by CI), with their hashes.\n# Regenerate after changing pyproject.toml: `make lock`.' $$f; done

clean: ## Remove the virtualenv, caches and the local instance
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache instance *.egg-info
