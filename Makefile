# The commands the README names. `make test` and `make serve` install what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
SWIFT ?= swift

.PHONY: help deps build-release serve test bench conformance conformance-full

# `make serve` defaults; any MYRIAD_* in the environment wins (see `myriad serve --help`).
export MYRIAD_PORT ?= 8080
export MYRIAD_STATS_INTERVAL ?= 10s

help:
	@echo "make serve         install what is missing, build release, serve (echo) on :8080"
	@echo "make test          install what is missing, build, run the whole test suite (and conformance)"
	@echo "make conformance   Autobahn|TestSuite cases 1-7, 9, 10 against myriad serve, both backends"
	@echo "make bench   codec benchmarks against SwiftNIO (bench/README.md)"

# System packages the build and the tests need: liburing-dev (the engine's only C dependency).
deps:
	@scripts/ensure-deps.sh

build-release: deps
	$(SWIFT) build -c release --product myriad

serve: build-release
	.build/release/myriad serve

# Builds everything (the tests run the real `myriad` binary too), then runs every test and
# the Autobahn conformance suite.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test
	scripts/conformance.sh

# Autobahn|TestSuite groups 1-7, 9 and 10 on both backends (about a minute).
conformance: deps
	$(SWIFT) build
	scripts/conformance.sh

# Every group that applies to a server without permessage-deflate (12.* and 13.* test
# compression, which Myriad does not negotiate: they report "unimplemented").
conformance-full: deps
	$(SWIFT) build
	scripts/conformance.sh '*' 'io_uring epoll'


bench: deps
	cd bench && $(SWIFT) package --allow-writing-to-package-directory benchmark --no-progress
