# The commands the README names. `make test` and `make serve` install what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
SWIFT ?= swift

.PHONY: help deps build-release serve cluster-demo test bench bench-engine bench-cluster bench-compression scale conformance fuzz fuzz-replay test-sanitize prometheus-demo

help:
	@echo "make serve         install what is missing, build release, serve (echo) on :8080 (MYRIAD_METRICS_PORT=9100: /metrics too)"
	@echo "make prometheus-demo  serve with /metrics on :9100 and a real Prometheus scraping it, UI on :9090 (LOAD=N connections)"
	@echo "make cluster-demo  nats-server and two broadcast nodes sharing topics (8081, 8082) until Ctrl-C"
	@echo "make test          install what is missing, build, run the whole test suite (and conformance)"
	@echo "make conformance   Autobahn|TestSuite, every case (12 and 13 in full) against myriad serve, both backends, strict"
	@echo "make fuzz          libFuzzer on the handshake parser, frame decoder, inflate path and both simulated workers (FUZZ_SECONDS each)"
	@echo "make test-sanitize the test suite under AddressSanitizer and ThreadSanitizer"
	@echo "make bench         microbenchmarks: codec vs SwiftNIO, wheel vs Heap, slab vs class, permessage-deflate (bench/README.md)"
	@echo "make bench-engine  io_uring vs epoll, memory, handshake and keep-alive costs, and a chart (bench/engine/)"
	@echo "make scale N=...   the million-connection run on this machine, and its chart (bench/scale/)"
	@echo "make bench-cluster two nodes and nats-server, 100,000 subscribers each (bench/cluster/)"
	@echo "make bench-compression  permessage-deflate in the engine: CPU per message, bytes, a broadcast compressed once (bench/compression/)"

# System packages the build and the tests need: liburing-dev (the engine's C dependency),
# zlib1g-dev (permessage-deflate's zlib), nats-server (the NATS client and cluster tests run a
# real one); the script lists all.
deps:
	@scripts/ensure-deps.sh

build-release: deps
	$(SWIFT) build -c release --product myriad

# Port 8080 and a stats line every 10 s unless the environment says otherwise (every knob is
# a MYRIAD_* variable: see `myriad serve --help`).
serve: build-release
	MYRIAD_PORT=$${MYRIAD_PORT:-8080} MYRIAD_STATS_INTERVAL=$${MYRIAD_STATS_INTERVAL:-10s} .build/release/myriad serve

# Topics across nodes (README, "Clustering"): nats-server on 127.0.0.1:4222 (monitoring 8222)
# and two `myriad serve --app broadcast` nodes on 8081 and 8082 with MYRIAD_CLUSTER_URL; prints
# how to connect; Ctrl-C stops all three. Ports: NATS_PORT, NATS_MONITOR_PORT, NODE_A_PORT, NODE_B_PORT.
cluster-demo: build-release
	scripts/cluster-demo.sh

# Builds everything (the tests run the real `myriad` binary too), then runs every test, the
# Autobahn conformance suite, and each example under examples/ with its real-client check.
# The load generator's end-to-end tests run after the engine's, not beside them: both start
# servers and thousands of sockets, and keep-alive deadlines should not share the CPU.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip MyriadLoadTests
	$(SWIFT) test --filter MyriadLoadTests
	scripts/conformance.sh
	scripts/examples.sh
	scripts/fuzz.sh --replay
	scripts/fuzz.sh 30

# Autobahn|TestSuite, every case of every group on both backends, strict (non-strict and
# unimplemented fail too): 1-7 and 10 with the server's default limits, 9 with 32M messages and
# a 64M queue, 12 and 13 (permessage-deflate) with MYRIAD_COMPRESSION=shared and 13 again with
# dedicated. The backends run side by side. The harness (Tests/autobahn) installs itself into
# .venv-autobahn/. About 12 minutes here.
conformance: deps
	$(SWIFT) build
	scripts/conformance.sh

# libFuzzer on the handshake parser, the frame decoder, the inflate path and both roles' simulated workers (fuzz/): FUZZ_SECONDS per target,
# new finds minimised into fuzz/corpus/.
FUZZ_SECONDS ?= 600
fuzz: deps
	scripts/fuzz.sh --merge $(FUZZ_SECONDS)

fuzz-replay: deps
	scripts/fuzz.sh --replay

# The suite under AddressSanitizer, then ThreadSanitizer (separate build folders). Under ASan
# the load generator's end-to-end tests are skipped: Foundation's Process.run reads past a
# readdir buffer (findMaximumOpenFromProcSelfFD) whenever the process has many descriptors;
# XCTest's runner keeps a few allocations until exit (suppressed).
test-sanitize: deps
	$(SWIFT) build --build-tests --sanitize=address --scratch-path .build-asan
	LSAN_OPTIONS=suppressions=$(CURDIR)/scripts/lsan-suppressions.txt \
		$(SWIFT) test --sanitize=address --scratch-path .build-asan --skip MyriadLoadTests
	$(SWIFT) build --build-tests --sanitize=thread --scratch-path .build-tsan
	$(SWIFT) test --sanitize=thread --scratch-path .build-tsan


# The million-connection run (any N): bench/scale/scale.sh; appends a row to bench/README.md and
# links the run's chart (connections, server RSS and CPU over time; matplotlib in .venv-bench/).
N ?= 1000000
scale: deps
	$(SWIFT) build -c release --product myriad
	bench/scale/scale.sh $(N)

bench: deps
	@scripts/ensure-deps.sh --bench
	cd bench && $(SWIFT) package --allow-writing-to-package-directory benchmark --no-progress

# io_uring against epoll in the same engine, same load, same run (3 alternating runs each),
# plus memory per idle connection, handshake and keep-alive costs: written into bench/README.md,
# with a chart of CPU and system calls per message (bench/charts/engine-echo.png).
bench-engine: build-release
	bench/engine/compare.py --runs 3

# `myriad serve` (release) with /metrics on MYRIAD_METRICS_PORT (9100) and Debian's prometheus
# scraping it every 5 s, its UI on PROMETHEUS_PORT (9090); LOAD=N holds N connections with
# `myriad load` so the graphs move. Ctrl-C stops all three (scripts/prometheus.py).
LOAD ?= 0
prometheus-demo: build-release
	scripts/prometheus.py --binary .build/release/myriad --load $(LOAD)

# Two nodes and nats-server on this machine, 100,000 subscribers per node on one topic, 1 and
# 100 publishes a second: written into bench/README.md ("Topics across nodes").
bench-cluster: build-release
	bench/cluster/compare.py

# permessage-deflate in the engine (issue 16): server CPU per message compressed and inflated,
# bytes on the wire, a 4 KiB broadcast to 100,000 subscribers compressed once against once per
# subscriber; written into bench/README.md.
bench-compression: build-release
	bench/compression/engine.py --runs 3
