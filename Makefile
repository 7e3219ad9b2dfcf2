# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install bench bench-full fuzz clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	mkdir -p var
	$(BIN)/pandasrv db init --if-missing
	$(BIN)/pandasrv queue add LOCAL --if-missing
	$(BIN)/pandasrv serve --host 127.0.0.1 --port 25080

# Two pytest-xdist workers (the machine's 2 cores; each test file on one worker, so a module's server starts
# once); tests marked ``solo`` get the machine to themselves (tests/conftest.py). TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The fuzzers with 25x the cases CI runs (schemathesis on the OpenAPI document, hypothesis on /server/panda).
fuzz: $(STAMP)
	PANDASRV_FUZZ_EXAMPLES=200 PANDASRV_TEST_BACKENDS=sqlite,postgresql $(BIN)/python -m pytest -q \
		tests/web/test_fuzz_openapi.py tests/web/test_fuzz_legacy.py $(PYTEST_ARGS)

# One report, bench/report.md + bench/report.json + plots (bench/README.md): quick (under 5 minutes) unless
# BENCH_FULL=1 or `make bench-full`. The load generator, Debian's wrk, is installed by the bench when missing.
bench: $(STAMP)
	$(BIN)/python -m bench.report $(BENCH_ARGS)

bench-full: $(STAMP)
	$(BIN)/python -m bench.report --full $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
