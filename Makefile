# Everything installs itself into .venv: a fresh machine needs only python3, pip and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: demo test browser lint format bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,distributed,playground]"
	touch $@

demo: $(INSTALLED)
	$(VENV)/bin/gradwell demo

test: $(INSTALLED) browser
	$(PY) -m pytest -rs

# The explain page's browser test drives Debian's Chromium: install it when it is missing
# and apt-get is there (best effort; without it that test is skipped and says why).
browser:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium for the browser test (apt-get)"; \
		( apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium ) \
			>/dev/null 2>&1 || echo "could not install chromium; the browser test will be skipped"; \
	fi

lint: $(INSTALLED)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples
	$(VENV)/bin/mypy

format: $(INSTALLED)
	$(VENV)/bin/ruff check --fix src tests benchmarks examples
	$(VENV)/bin/ruff format src tests benchmarks examples

bench: $(INSTALLED)
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/mlp.py
	$(PY) benchmarks/cnn.py --repeat 3
	$(PY) benchmarks/doctor_overhead.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
