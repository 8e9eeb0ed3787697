# KOLE's front door. `make demo` runs the main job, `make test` passes the tests.
# Every target installs what it needs first (hack/install-deps.sh).

SHELL := /bin/bash

BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
CTEST_ARGS ?=
KOLE_BENCH_NODES ?= 1000000
export KOLE_BENCH_NODES
# Seconds each fuzz target runs in `make fuzz`.
FUZZ_SECONDS ?= 30

# Sources that clang-format must leave unchanged.
FORMAT_SOURCES = $(shell git ls-files '*.h' '*.cc')

.PHONY: all build deps configure unit test lint format bench bench-store bench-bridge demo clean

all: build

deps:
	@bash hack/install-deps.sh

$(BUILD_DIR)/build.ninja:
	@bash hack/install-deps.sh
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

configure: $(BUILD_DIR)/build.ninja

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# ctest's output is kept in $(BUILD_DIR)/ctest.log for the summary `make test`
# prints last.
unit: build
	cd $(BUILD_DIR) && set -o pipefail && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS) \
	  | tee ctest.log

# The whole suite, each stage timed. Later stages (integration, e2e) join here
# as they land; see README.md for what each covers.
test:
	@bash hack/stage.sh deps $(MAKE) --no-print-directory deps
	@bash hack/stage.sh build $(MAKE) --no-print-directory build
	@bash hack/stage.sh lint $(MAKE) --no-print-directory lint
	@bash hack/stage.sh unit $(MAKE) --no-print-directory unit
	@bash hack/stage.sh integration $(MAKE) --no-print-directory integration
	@bash hack/stage.sh fuzz $(MAKE) --no-print-directory fuzz FUZZ_SECONDS=15
	@bash hack/test-summary.sh $(BUILD_DIR)/ctest.log

lint: deps
	@clang-format --dry-run --Werror $(FORMAT_SOURCES)
	@echo "lint: clang-format clean ($(words $(FORMAT_SOURCES)) files)"

format: deps
	clang-format -i $(FORMAT_SOURCES)

# kubectl (a pinned release, by path) against a standalone kole-apiserver on
# a free loopback port (hack/kubectl-integration.sh).
.PHONY: integration
integration: build
	@bash hack/kubectl-integration.sh $(BUILD_DIR)

# kole-admin against real servers: back up a running kole-apiserver, restore
# into a new data directory, serve it (hack/backup-integration.sh).
.PHONY: backup-integration
backup-integration: build
	@bash hack/backup-integration.sh $(BUILD_DIR)

# Builds the libFuzzer targets in build-fuzz (clang) and runs each for
# FUZZ_SECONDS; fails if one finds a crash (hack/run-fuzzers.sh).
.PHONY: fuzz
fuzz: deps
	@bash hack/run-fuzzers.sh $(FUZZ_SECONDS)

bench: bench-store bench-bridge bench-api

bench-store: build
	$(BUILD_DIR)/bin/kole-bench-store --nodes $(KOLE_BENCH_NODES)

# The bridge's own ceiling, broker taken out (in process).
bench-bridge: build
	$(BUILD_DIR)/bin/kole-bench-bridge --nodes $(KOLE_BENCH_NODES)

# The API front end over loopback: get, list of 500, watch fan-out (100
# watchers), full list plain and gzipped, and kubectl get over the fleet,
# while heartbeats flow (bench/api_bench.cc).
.PHONY: bench-api
bench-api: build
	$(BUILD_DIR)/bin/kole-bench-api --nodes $(KOLE_BENCH_NODES)

demo:
	@echo "make demo will start mosquitto, kole-apiserver, a simulated fleet and a local"
	@echo "control plane, and show 'kubectl get nodes.edge.kole.io' through the aggregator."
	@echo "Those parts are not built yet (see README.md, Status). What exists today is the"
	@echo "fleet store; its benchmark runs with: make bench-store"
	@exit 1

clean:
	rm -rf $(BUILD_DIR)
