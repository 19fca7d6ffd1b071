# Two commands on a fresh machine: `make demo`, `make test`.
# Everything installs into .venv from pyproject.toml; nothing by hand.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all venv browser rgw kafka kafka-sums bench-tools demo dev test test-kafka test-unit test-stores test-integration test-faults schemas docs lint constraints bench clean

all: venv

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "callvault needs Python 3.11 or newer on PATH" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[embedded,dev]'
	@touch $(STAMP)

venv: $(STAMP)

# The browser tests drive Debian's Chromium (Playwright cannot download its own
# here). Installed when missing and apt-get can run; otherwise those tests skip
# and say so.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "could not install chromium: the browser tests will skip"; \
	  else echo "no chromium and no root apt-get: the browser tests will skip"; fi; }

# The storage case runs on a real Ceph RGW too (tests/stores/rgw.py starts it).
# Installed like Chromium: when missing and apt-get can run; otherwise that lane skips.
rgw:
	@command -v radosgw >/dev/null 2>&1 && command -v ceph-osd >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's radosgw for the storage case's Ceph lane"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      radosgw ceph-mon ceph-osd >/dev/null) || echo "could not install radosgw: the Ceph RGW lane will skip"; \
	  else echo "no radosgw and no root apt-get: the Ceph RGW lane will skip"; fi; }

# Apache Kafka for the test matrix (and CALLVAULT_DEMO_BROKER=kafka make demo): the pinned broker and
# its runtime dependencies from Maven Central into .kafka/lib, checked against kafka/SHA256SUMS.
# Without java or mvn the Apache Kafka lane skips and says why.
KAFKA_LIB := .kafka/lib
KAFKA_STAMP := .kafka/.resolved

$(KAFKA_STAMP): kafka/pom.xml kafka/SHA256SUMS
	@if command -v mvn >/dev/null 2>&1 && command -v java >/dev/null 2>&1; then \
	  rm -rf $(KAFKA_LIB) && mkdir -p $(KAFKA_LIB) && \
	  mvn -q -B -f kafka/pom.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/$(KAFKA_LIB) && \
	  (cd $(KAFKA_LIB) && sha256sum --quiet -c $(CURDIR)/kafka/SHA256SUMS) && \
	  test "$$(ls $(KAFKA_LIB) | wc -l)" = "$$(wc -l < kafka/SHA256SUMS)" && touch $(KAFKA_STAMP) \
	  || { echo "the Apache Kafka jars did not resolve or do not match kafka/SHA256SUMS" >&2; exit 1; }; \
	else echo "no mvn or java: the Apache Kafka lane will skip"; fi

kafka: $(KAFKA_STAMP)

# After raising a version in kafka/pom.xml: resolve without checking, then write the sums.
kafka-sums:
	rm -rf $(KAFKA_LIB) && mkdir -p $(KAFKA_LIB)
	mvn -q -B -f kafka/pom.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/$(KAFKA_LIB)
	cd $(KAFKA_LIB) && sha256sum * > $(CURDIR)/kafka/SHA256SUMS

demo: $(STAMP)
	$(BIN)/callvault demo

dev: $(STAMP)
	$(BIN)/callvault dev

# Three processes side by side (pytest-xdist), a test file each at a time: most of
# the real-stack tests wait on processes (group joins, purge intervals, restarts),
# and three lanes overlap those waits on 2 cores (the CPU is 70 % busy, not more).
# Each process starts its own broker and store. `make test LANES=2` for fewer.
# Then the Apache Kafka lane: the real-stack tests that prove the broker's part (the pipeline's outcomes,
# offsets, a restarted worker's state, kill -9 at random, two workers and one killed, workers joining
# mid-call, TLS and SCRAM users, which start a secured broker of their own) on Apache Kafka,
# a broker per test process. The two kill tests and the restart test run there instead of on Tansu (Apache
# Kafka is the truth; `make test-faults` and `make test-integration` still run them on Tansu), which keeps
# both lanes within 10 minutes on 2 cores.
# `make test-kafka` runs every real-stack test on Apache Kafka.
KAFKA_LANE := tests/integration/test_outcomes.py tests/integration/test_broker_offsets.py \
	tests/integration/test_restart.py tests/faults/test_killed_worker.py tests/faults/test_two_workers.py \
	tests/faults/test_workers_joining.py tests/integration/test_kafka_security.py
KAFKA_ONLY := --ignore=tests/faults/test_killed_worker.py --ignore=tests/faults/test_two_workers.py \
	--ignore=tests/faults/test_workers_joining.py \
	--ignore=tests/integration/test_kafka_security.py --ignore=tests/integration/test_restart.py
LANES ?= 3
# Each lane ends with its 15 slowest steps (setup, call or teardown): where the 10 minutes go.
SLOWEST := --durations=15
test: $(STAMP) browser rgw kafka
	@if [ -f $(KAFKA_STAMP) ]; then \
	  $(BIN)/python -m pytest -q -n $(LANES) --dist loadfile $(SLOWEST) $(KAFKA_ONLY) && \
	  echo "the Apache Kafka lane:" && \
	  CALLVAULT_STACK_BROKER=kafka $(BIN)/python -m pytest -q -n $(LANES) --dist loadfile $(SLOWEST) $(KAFKA_LANE); \
	else \
	  echo "no Apache Kafka jars (make kafka): every test runs on Tansu"; \
	  $(BIN)/python -m pytest -q -n $(LANES) --dist loadfile $(SLOWEST); \
	fi

test-kafka: $(STAMP) kafka
	CALLVAULT_STACK_BROKER=kafka $(BIN)/python -m pytest -q -n $(LANES) --dist loadfile tests/integration tests/faults tests/e2e

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

test-stores: $(STAMP) rgw
	$(BIN)/python -m pytest -q tests/stores

test-integration: $(STAMP)
	$(BIN)/python -m pytest -q tests/integration

# Part of `make test`; alone: kills, restarts and broken stores on purpose.
test-faults: $(STAMP)
	CALLVAULT_FAULTS_FULL=1 $(BIN)/python -m pytest -q -m faults -s tests/faults

schemas: $(STAMP)
	$(BIN)/callvault schemas write

# The command-line reference in docs/commands.md, from the command tree (tests/unit/test_docs.py checks it).
docs: $(STAMP)
	$(BIN)/python -m callvault.cli.reference write

# The versions the image is built with (Dockerfile: pip install -c deploy/constraints.txt).
constraints: $(STAMP)
	{ echo "# Versions the image is built with (pip install -c): \`make constraints\` writes it from a venv where make test passed."; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -vi '^-e\|^callvault' | sort -f; } > deploy/constraints.txt

lint: $(STAMP)
	$(BIN)/ruff check services tests bench

# bench/api.py loads the API with wrk (C, light on the shared CPU) when it is there.
bench-tools:
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null) \
	      || echo "could not install wrk: bench/api.py falls back to Python clients"; \
	  else echo "no wrk: bench/api.py falls back to Python clients"; fi; }

# Every benchmark in turn (12 min 47 s on 2 cores, measured before bench/payments.py and bench/faust_floor.py
# (about 6 min each), bench/api_floor.py (1 min) and bench/subject_lookup.py (2 min), plus about 30 min for the
# 10-million-event audit replay: writing its archive and replaying it), then bench/results.json
# and the table in docs/benchmarks.md from their figures. Run it on an otherwise idle machine.
bench: $(STAMP) bench-tools
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/payments.py
	$(BIN)/python bench/faust_floor.py
	$(BIN)/python bench/purge.py
	$(BIN)/python bench/api.py --clients 20
	$(BIN)/python bench/api_floor.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/subject_lookup.py
	$(BIN)/python bench/audit.py
	$(BIN)/python bench/audit.py --events 10000000 --name audit-10m
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/results.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
