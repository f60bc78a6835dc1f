# txetcd2 developer commands. `make test` and `make demo` do all set-up on a fresh Debian/Ubuntu
# machine: a virtualenv in .venv, the package with its test extras, and etcd-server from apt
# when no etcd binary is found (TXETCD2_ETCD, PATH or /usr/bin/etcd).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Extra arguments for trial, e.g. `make test TRIAL_ARGS=-j2`; `make test TESTS=tests.integration`
# runs a subset.
TRIAL_ARGS ?=
TESTS ?= tests

# `make trial` (part of `make test`) runs two trial passes, one after the other, and fails if
# either fails: $(TESTS) on the client's default agent, its own agent pool
# (txetcd2/_transport/pool.py; TXETCD2_AGENT is unset for it), then $(TWISTED_TESTS) with
# TXETCD2_AGENT=twisted, on Twisted's Agent, the fallback when httptools cannot be imported
# (txetcd2/_transport/default.py).
# The second pass runs every test module whose clients, sessions, exchanges or watchers send
# requests through an agent: the client's default one (integration and conformance tests, and
# child processes, e.g. examples, twistd and the blocking client, which inherit the variable), or
# a fake one injected by a unit test (cheap to run twice, and right if a test stops injecting it).
# Left out, as they send no request through an agent TXETCD2_AGENT chooses:
#   tests.test_errors tests.test_keys tests.test_models tests.test_times: records and rules, no I/O;
#   tests.test_exports tests.test_recipes_exports tests.test_version: public names and the version;
#   tests.test_stream: the event-stream reader, fed bytes directly;
#   tests.test_docs: the docs build's cross-references;
#   tests.test_blocking: the blocking facade's argument checks, before any request (its calls
#     run in tests.integration.test_blocking, which is in the second pass);
#   tests.test_http11 tests.test_immediate tests.test_pool: the agent pool's own parts, built
#     explicitly;
#   tests.integration.test_pool tests.integration.test_proxy: force the agent pool whatever
#     TXETCD2_AGENT says (proxy= needs it);
#   tests.integration.test_harness: the etcd harness, whose probes always use Twisted's Agent;
#   tests.integration.test_packaging: builds and installs the sdist and the wheel, no client.
# Nothing else is trimmed: on 2 cores the first pass takes ~400 s, the second ~355 s, the whole of
# .ci/run ~13 minutes (the etcd 3.5 conformance suite, ~40 s of the second pass, would be the
# first to go if CI came near 16 minutes).
# With TESTS= given, the second pass runs those tests less the ones above, and is skipped if none
# remain; TWISTED_TESTS= sets its list outright (empty: no second pass).
AGENT_INDEPENDENT := \
	tests.test_errors tests.test_keys tests.test_models tests.test_times \
	tests.test_exports tests.test_recipes_exports tests.test_version \
	tests.test_stream tests.test_docs tests.test_blocking \
	tests.test_http11 tests.test_immediate tests.test_pool tests.test_tls_connection \
	tests.integration.test_pool tests.integration.test_agent tests.integration.test_proxy \
	tests.integration.test_harness \
	tests.integration.test_packaging
ALL_TEST_MODULES := $(sort $(subst /,.,$(basename $(wildcard tests/test_*.py tests/*/test_*.py))))
ifeq ($(strip $(TESTS)),tests)
TWISTED_TESTS ?= $(filter-out $(AGENT_INDEPENDENT),$(ALL_TEST_MODULES))
else
TWISTED_TESTS ?= $(filter-out $(AGENT_INDEPENDENT),$(TESTS))
endif

export PIP_DISABLE_PIP_VERSION_CHECK := 1
export DEBIAN_FRONTEND := noninteractive

# apt needs root: use sudo when we are not root and sudo exists.
SUDO := $(shell [ "$$(id -u)" = 0 ] || ! command -v sudo >/dev/null 2>&1 || echo sudo)

.PHONY: test demo setup venv etcd tinyproxy lint typecheck docs trial clean

test: setup lint typecheck docs trial

demo: setup
	$(BIN)/python examples/demo.py

setup: venv etcd tinyproxy

venv: $(VENV)/.installed

$(BIN)/python:
	@if ! command -v $(PYTHON) >/dev/null 2>&1; then \
		echo "$(PYTHON) not found: installing python3 and python3-venv with apt"; \
		$(SUDO) apt-get update; \
		$(SUDO) apt-get install -y python3 python3-venv; \
	fi
	@if ! $(PYTHON) -m venv $(VENV); then \
		echo "python3 -m venv failed: installing python3-venv with apt"; \
		rm -rf $(VENV); \
		$(SUDO) apt-get update; \
		$(SUDO) apt-get install -y python3-venv; \
		$(PYTHON) -m venv $(VENV); \
	fi
	$(BIN)/python -m pip install --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml txetcd2/_version.py
	$(BIN)/python -m pip install -e '.[test]'
	touch $@

etcd:
	@if [ -n "$${TXETCD2_ETCD:-}" ]; then \
		echo "etcd: using TXETCD2_ETCD=$$TXETCD2_ETCD"; \
	elif command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ]; then \
		echo "etcd: found $$(command -v etcd || echo /usr/bin/etcd)"; \
	else \
		echo "etcd: not found, installing etcd-server with apt"; \
		$(SUDO) apt-get update; \
		$(SUDO) apt-get install -y etcd-server; \
	fi

# The proxy tests (tests/integration/test_proxy.py) start Debian's tinyproxy.
tinyproxy:
	@if command -v tinyproxy >/dev/null 2>&1 || [ -x /usr/bin/tinyproxy ]; then \
		echo "tinyproxy: found"; \
	else \
		echo "tinyproxy: not found, installing tinyproxy-bin with apt"; \
		$(SUDO) apt-get update; \
		$(SUDO) apt-get install -y tinyproxy-bin || $(SUDO) apt-get install -y tinyproxy; \
	fi

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PYTHONPATH=. $(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy

# The docs (docs/README.rst): HTML in docs/_build/html; every warning, e.g. a broken
# cross-reference, is an error. -E: read every page again, so no warning hides in a cache.
docs: venv
	$(BIN)/sphinx-build -n -W --keep-going -q -E -b html docs docs/_build/html

trial: venv etcd tinyproxy
	@status=0; \
	echo "trial: pass 1 of 2, on the default agent (the agent pool): $(TESTS)"; \
	env -u TXETCD2_AGENT $(BIN)/python -m twisted.trial $(TRIAL_ARGS) $(TESTS) || status=1; \
	if [ -n "$(strip $(TWISTED_TESTS))" ]; then \
		echo "trial: pass 2 of 2, on Twisted's Agent (TXETCD2_AGENT=twisted): $(strip $(TWISTED_TESTS))"; \
		TXETCD2_AGENT=twisted $(BIN)/python -m twisted.trial $(TRIAL_ARGS) $(TWISTED_TESTS) || status=1; \
	else \
		echo "trial: pass 2 of 2 skipped: TWISTED_TESTS is empty (no test of TESTS is left)"; \
	fi; \
	exit $$status

clean:
	rm -rf $(VENV) _trial_temp* build dist *.egg-info .mypy_cache .ruff_cache docs/_build

# The benchmark (bench/README.rst): `make bench` (full run, ~3-5 minutes) or `make bench-quick`
# (seconds). Its own virtualenv, .venv-bench, holds the peers from PyPI; wrk comes from apt.
BENCH_VENV := .venv-bench
BENCH_ARGS ?=

.PHONY: bench bench-quick bench-deps

$(BENCH_VENV)/.installed:
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q python-etcd aio_etcd aiohttp
	$(BENCH_VENV)/bin/pip install -q .
	touch $@

bench-deps: $(BENCH_VENV)/.installed etcd
	@command -v wrk >/dev/null 2>&1 || { $(SUDO) apt-get update; $(SUDO) apt-get install -y wrk; }

bench: bench-deps
	PYTHONPATH=. $(BENCH_VENV)/bin/python -m bench.run $(BENCH_ARGS)

bench-quick: bench-deps
	PYTHONPATH=. $(BENCH_VENV)/bin/python -m bench.run --quick $(BENCH_ARGS)

# The watcher benchmark (bench/README.rst): a Watcher against a one-long-poll-per-event loop
# in the same run; needs only the package: `make bench-watch BENCH_WATCH_ARGS='--rounds 5'`.
BENCH_WATCH_ARGS ?= --rounds 3

.PHONY: bench-watch

bench-watch: setup
	PYTHONPATH=. $(BIN)/python bench/watch_bench.py $(BENCH_WATCH_ARGS)

# The MemoryEtcd row (bench/README.rst): one in-memory key-space round trip per call, no etcd.
.PHONY: bench-memory

bench-memory: venv
	$(BIN)/python bench/memory_bench.py
