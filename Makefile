# The commands the README names. `make test` and `make serve` install what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
SWIFT ?= swift

.PHONY: help deps test bench

help:
	@echo "make test    install what is missing, build, run the whole test suite"
	@echo "make bench   codec benchmarks against SwiftNIO (bench/README.md)"

# System packages the build and the tests need: liburing-dev (the engine's only C dependency).
deps:
	@scripts/ensure-deps.sh

# Builds everything (the tests run the real `myriad` binary too), then runs every test.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test

bench: deps
	cd bench && $(SWIFT) package --allow-writing-to-package-directory benchmark --no-progress
