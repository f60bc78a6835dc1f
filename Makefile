# The benchmark: `make bench` (full run, ~5 minutes) or `make bench-quick` (seconds).
# It uses its own virtualenv, .venv-bench, with the peers from PyPI; wrk comes from apt.
PYTHON ?= python3
BENCH_VENV := .venv-bench
BENCH_ARGS ?=

$(BENCH_VENV)/.done:
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --upgrade pip
	$(BENCH_VENV)/bin/pip install -q python-etcd aio_etcd aiohttp
	if [ -f setup.cfg ] || [ -f pyproject.toml ]; then \
		$(BENCH_VENV)/bin/pip install -q . ; \
	else \
		$(BENCH_VENV)/bin/pip install -q twisted treq attrs service-identity hyperlink ; \
	fi
	touch $@

bench-deps: $(BENCH_VENV)/.done
	command -v wrk >/dev/null || (apt-get install -y wrk || sudo apt-get install -y wrk)
	command -v etcd >/dev/null || test -x /usr/bin/etcd || (echo "etcd (>= 3.4, v2 API) is needed" && false)

bench: bench-deps
	PYTHONPATH=. $(BENCH_VENV)/bin/python -m bench.run $(BENCH_ARGS)

bench-quick: bench-deps
	PYTHONPATH=. $(BENCH_VENV)/bin/python -m bench.run --quick $(BENCH_ARGS)

.PHONY: bench bench-deps bench-quick
