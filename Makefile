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

# The whole suite, each stage timed (README.md says what each covers); e2e
# at CI size. Each script suite appends its counts to
# $(BUILD_DIR)/test-counts for the summary line.
test: export KOLE_TEST_COUNTS = $(abspath $(BUILD_DIR))/test-counts
test:
	@mkdir -p $(BUILD_DIR) && rm -f $(BUILD_DIR)/test-counts
	@bash hack/stage.sh deps $(MAKE) --no-print-directory deps
	@bash hack/stage.sh build $(MAKE) --no-print-directory build
	@bash hack/stage.sh tools $(MAKE) --no-print-directory tools
	@bash hack/stage.sh lint $(MAKE) --no-print-directory lint
	@bash hack/stage.sh unit $(MAKE) --no-print-directory unit
	@bash hack/stage.sh integration $(MAKE) --no-print-directory integration
	@bash hack/stage.sh e2e $(MAKE) --no-print-directory e2e E2E_NODES=10000
	@bash hack/stage.sh fuzz $(MAKE) --no-print-directory fuzz FUZZ_SECONDS=15
	@bash hack/test-summary.sh $(BUILD_DIR)/ctest.log $(BUILD_DIR)/test-counts

lint: deps
	@clang-format --dry-run --Werror $(FORMAT_SOURCES)
	@echo "lint: clang-format clean ($(words $(FORMAT_SOURCES)) files)"
	@$(MAKE) --no-print-directory helm-lint manifests-check

# The chart, with the pinned helm (e2e/build-tools.sh builds it once and
# caches it; later calls return at once).
.PHONY: helm-lint
helm-lint:
	@helm=$$(bash e2e/build-tools.sh)/helm && $$helm lint --strict --quiet helm/kole \
	  && $$helm lint --strict --quiet helm/kole --set mosquitto.enabled=true \
	  && echo "lint: helm lint --strict clean (helm/kole)"

# manifests/ is helm/kole rendered with certificates.mode=external
# (hack/render-manifests.sh); manifests-check fails when it is out of date.
.PHONY: manifests manifests-check
manifests:
	@bash hack/render-manifests.sh

manifests-check:
	@bash hack/render-manifests.sh --check

# The chart's in-chart broker config (rendered mosquitto.conf, ACLs,
# generated certificates) run on loopback with kole-apiserver and
# kole-edge-sim (hack/chart-mosquitto-test.sh).
.PHONY: chart-mosquitto-test
chart-mosquitto-test: build
	@bash hack/chart-mosquitto-test.sh $(BUILD_DIR)

# The container image (Dockerfile). Needs Docker; our machines have none, so
# the tests exercise the same root filesystem through hack/build-rootfs.sh.
IMAGE ?= kole:dev
.PHONY: image
image:
	@command -v docker >/dev/null || { echo "make image: docker is not installed here; the image's root filesystem can be built without it: hack/build-rootfs.sh (make rootfs-test)" >&2; exit 1; }
	docker build -t $(IMAGE) .

# The image's root filesystem without Docker (debootstrap, cached), and the
# test that runs kole-apiserver in it as the chart does: user 65532,
# read-only root, bind-mounted data and certificate directories.
.PHONY: rootfs rootfs-test
rootfs: build
	@bash hack/build-rootfs.sh $(BUILD_DIR)

rootfs-test: build
	@bash hack/rootfs-test.sh $(BUILD_DIR)

# For users with kind and Docker (not run on our machines): build the image,
# load it into a kind cluster (created if missing), install the chart with
# it, and run the e2e suite against that cluster.
KIND ?= kind
KIND_CLUSTER ?= kole
.PHONY: kind-e2e
kind-e2e:
	@bash hack/kind-e2e.sh "$(KIND)" "$(KIND_CLUSTER)" "$(IMAGE)"

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

bench: bench-store bench-bridge bench-api bench-workload bench-peer

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

# An EdgeDaemonSet to a simulated fleet through mosquitto, heartbeats every
# 10 s: time until every node has its pod set and until 99 % of the pods run,
# messages used, memory per pod, kubectl get pods -A, a rolling update
# (bench/workload_bench.cc).
.PHONY: bench-workload
bench-workload: build
	$(BUILD_DIR)/bin/kole-bench-workload --nodes $(KOLE_BENCH_NODES)

# Side by side with upstream (bench/peer/README.md): the same seeded fleet as
# real Nodes and Leases in kube-apiserver + etcd, and in KOLE through
# mosquitto and the aggregation layer; ratio table, figures and docs/peer.png.
# KOLE_PEER_SIZES are run on both sides, KOLE_BENCH_NODES by KOLE alone.
KOLE_PEER_SIZES ?= 10000 50000
.PHONY: bench-peer
bench-peer: build
	@KOLE_PEER_SIZES="$(KOLE_PEER_SIZES)" bash bench/peer/run.sh $(BUILD_DIR)

# Local control plane, mosquitto, KOLE installed with its chart, DEMO_NODES
# simulated nodes, then kubectl through the aggregation layer (hack/demo.sh).
# DEMO_SECONDS=N runs without a terminal and exits 0 after N seconds.
DEMO_NODES ?= 100000
DEMO_SECONDS ?= 0
demo: build
	@DEMO_NODES=$(DEMO_NODES) DEMO_SECONDS=$(DEMO_SECONDS) bash hack/demo.sh $(BUILD_DIR)

# The pinned upstream programs (etcd, kube-apiserver, kube-controller-manager,
# kubectl, helm), built from their Go modules and cached in $(KOLE_CACHE).
.PHONY: tools e2e
tools: deps
	@bash e2e/build-tools.sh >/dev/null

# The chart through a real control plane's aggregation layer (e2e/README.md).
# E2E_NODES sets the simulated fleet; KUBECONFIG=... runs against a cluster.
E2E_NODES ?= 2000
e2e: build
	@E2E_NODES=$(E2E_NODES) bash e2e/run.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR)
