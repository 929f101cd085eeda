# minikubelet: `make run` runs the agent on the bundled demo; `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STATE ?= $(CURDIR)/.state
DEMO_IMAGE := localhost/minikubelet/busybox:1
LISTEN ?= 127.0.0.1:10255
PYTEST_ARGS ?=

.PHONY: all venv docker image run test lint unit integration bench fuzz soak clean install uninstall

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

# --- Installing as a systemd service (README: "Running it as a service") ---
# The package goes into a virtualenv of its own under OPTDIR: its dependencies
# (grpcio, uvloop, docker...) at the versions it was tested with, apart from the
# system's Python packages (Debian's Python refuses pip installs, PEP 668), and
# removed whole by `make uninstall`. BINDIR gets a link to its command, UNITDIR
# the unit. DESTDIR stages everything under another root (tests, packaging);
# the venv is built aside and its paths rewritten to the final OPTDIR.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
UNITDIR ?= $(PREFIX)/lib/systemd/system
OPTDIR ?= /opt/minikubelet
# The agent reads /etc/minikubelet/config.yaml by default; not a variable on purpose.
CONFDIR := /etc/minikubelet
# What pip installs (a wheel, for instance) and how (--no-deps, for instance).
PACKAGE ?= .
PIP_INSTALL_ARGS ?=
STAGE = $(DESTDIR)$(OPTDIR).new
SYSTEMD_RUNNING = [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]

install:
	@case "$(OPTDIR)" in /?*) ;; *) echo "OPTDIR must be an absolute path"; exit 1;; esac
	rm -rf $(STAGE)
	$(PYTHON) -m venv $(STAGE)
	$(STAGE)/bin/pip install -q --disable-pip-version-check $(PIP_INSTALL_ARGS) $(PACKAGE)
	grep -rlI -- '$(STAGE)' $(STAGE)/bin $(STAGE)/pyvenv.cfg | xargs -r sed -i 's|$(STAGE)|$(OPTDIR)|g'
	rm -rf $(DESTDIR)$(OPTDIR).old
	if [ -e $(DESTDIR)$(OPTDIR) ]; then mv $(DESTDIR)$(OPTDIR) $(DESTDIR)$(OPTDIR).old; fi
	mv $(STAGE) $(DESTDIR)$(OPTDIR)
	rm -rf $(DESTDIR)$(OPTDIR).old
	install -d -m 0755 $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR)
	ln -sfn $(OPTDIR)/bin/minikubelet $(DESTDIR)$(BINDIR)/minikubelet
	sed 's|/opt/minikubelet|$(OPTDIR)|g' packaging/minikubelet.service > $(DESTDIR)$(UNITDIR)/minikubelet.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/minikubelet.service
	[ -d $(DESTDIR)$(CONFDIR) ] || install -d -m 0755 $(DESTDIR)$(CONFDIR)
	@# Never overwrite a config.yaml that is there: it is the user's.
	if [ -e $(DESTDIR)$(CONFDIR)/config.yaml ]; then \
		echo "keeping the existing $(DESTDIR)$(CONFDIR)/config.yaml"; \
	else install -m 0644 packaging/config.yaml $(DESTDIR)$(CONFDIR)/config.yaml; fi
	@# Writable by root only: the agent refuses a directory others can write.
	[ -d $(DESTDIR)$(CONFDIR)/manifests ] || install -d -m 0755 $(DESTDIR)$(CONFDIR)/manifests
	if $(SYSTEMD_RUNNING); then systemctl daemon-reload; fi
	@echo "installed; start it with: systemctl enable --now minikubelet"

# Removes what install put in place. Kept: a config.yaml that differs from the
# shipped one, a manifest directory that is not empty, and the state directory
# (/var/lib/minikubelet), which pods still running use.
uninstall:
	@case "$(OPTDIR)" in /?*) ;; *) echo "OPTDIR must be an absolute path"; exit 1;; esac
	if $(SYSTEMD_RUNNING); then systemctl disable --now minikubelet.service || true; fi
	rm -f $(DESTDIR)$(UNITDIR)/minikubelet.service
	if [ "$$(readlink $(DESTDIR)$(BINDIR)/minikubelet)" = "$(OPTDIR)/bin/minikubelet" ]; then \
		rm -f $(DESTDIR)$(BINDIR)/minikubelet; fi
	rm -rf $(DESTDIR)$(OPTDIR) $(STAGE) $(DESTDIR)$(OPTDIR).old
	if cmp -s packaging/config.yaml $(DESTDIR)$(CONFDIR)/config.yaml; then \
		rm -f $(DESTDIR)$(CONFDIR)/config.yaml; \
	elif [ -e $(DESTDIR)$(CONFDIR)/config.yaml ]; then \
		echo "kept $(DESTDIR)$(CONFDIR)/config.yaml: it was changed"; fi
	rmdir $(DESTDIR)$(CONFDIR)/manifests 2>/dev/null || \
		[ ! -d $(DESTDIR)$(CONFDIR)/manifests ] || \
		echo "kept $(DESTDIR)$(CONFDIR)/manifests: it holds manifests"
	rmdir $(DESTDIR)$(CONFDIR) 2>/dev/null || true
	if $(SYSTEMD_RUNNING); then systemctl daemon-reload; fi
	@echo "kept the state directory (default /var/lib/minikubelet) and any pod still running:"
	@echo "  docker ps --filter label=io.minikubelet.node"
