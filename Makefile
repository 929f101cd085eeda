# minikubelet: `make run` runs the agent on the bundled demo; `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STATE ?= $(CURDIR)/.state
DEMO_IMAGE := localhost/minikubelet/busybox:1
LISTEN ?= 127.0.0.1:10255
PYTEST_ARGS ?=

.PHONY: all venv docker image run test lint unit integration bench fuzz soak clean

all: test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

docker: venv
	scripts/ensure-docker $(PY) $(STATE)

image: docker
	$(PY) scripts/busybox_image.py $(DEMO_IMAGE)

# The demo: pods of manifests/demo on Docker, state under .state/, status on $(LISTEN).
run: image
	@echo "minikubelet: try 'curl -s http://$(LISTEN)/pods' and 'docker ps'; Ctrl-C stops the agent (pods keep running)"
	$(VENV)/bin/minikubelet run --config '' --manifest-dir manifests/demo \
		--state-dir $(STATE)/state --listen $(LISTEN)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

unit: venv
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

integration: image
	$(VENV)/bin/pytest tests/integration $(PYTEST_ARGS)

test: lint image
	$(VENV)/bin/pytest tests $(PYTEST_ARGS)

# The long fuzzing profile: >= 10,000 generated manifests through parse -> validate -> build.
fuzz: venv
	MINIKUBELET_FUZZ_PROFILE=long $(VENV)/bin/pytest tests/unit/test_fuzz_manifest.py --timeout=0 $(PYTEST_ARGS)

bench: image
	$(PY) -m bench $(BENCH_ARGS)

# The soak (issue 10), not part of CI: 110 probed pods under manifest churn and
# killed containers, then end checks; takes SOAK_MINUTES plus a few minutes.
SOAK_MINUTES ?= 10
soak: image
	$(PY) -c 'import matplotlib' 2>/dev/null || $(PY) -m pip install -q -e '.[soak]'
	$(PY) -m bench soak --minutes $(SOAK_MINUTES)

clean:
	rm -rf $(STATE) .mypy_cache .ruff_cache .pytest_cache
