# edgeota: build, test and demo. `make help` lists the targets.
GO       ?= go
SHELL    := /bin/bash
.SHELLFLAGS := -o pipefail -c
BIN      := bin/edgeota
FUZZTIME ?= 10s
FUZZTIME_SHORT ?= 2s
PKGS     := ./...

.PHONY: help build package test deps fmt vet lint unit packaging fuzz-short sweep scenarios bench-once fuzz bench demo clean image image-test scale

help:
	@echo "make demo   build edgeota and run the end-to-end demo (no broker or server needed)"
	@echo "make test   what CI runs: system packages, fmt check, vet, staticcheck, go test -race, the packages, a short fuzz, power-cut sweeps, scenarios, every benchmark once"
	@echo "make build  build $(BIN)"
	@echo "make package  .deb and .rpm packages for amd64 and arm64 in dist/ (nfpm; VERSION=... to override git's)"
	@echo "make packaging  build the packages and check them: lintian, systemd-analyze, dpkg in a debootstrap root (as make test does)"
	@echo "make fmt    fail if gofmt would change a file (never rewrites)"
	@echo "make lint   staticcheck"
	@echo "make fuzz   run every Fuzz target for FUZZTIME (default $(FUZZTIME)); FUZZ=REGEXP picks targets"
	@echo "make fuzz-short  every Fuzz target for FUZZTIME_SHORT (default $(FUZZTIME_SHORT)), as make test does"
	@echo "make bench  run the Go benchmarks, figures in bench.txt"
	@echo "make scale  the 2,000-node scenario (firmware-sim/scenarios/scale/fleet-2000.yaml) and its figures: time, CPU, memory per node"
	@echo "make bench-once  every benchmark with b.N = 1, as make test does: they keep running, the figures mean nothing"
	@echo "make image  build the gateway's container image (scripts/packaging/Containerfile) with buildah, as root; IMAGE=NAME:TAG names it"
	@echo "make image-test  build the image into a private store and run it with podman: health check, admin API, DTLS, stop, restart"

build:
	$(GO) build -o $(BIN) ./cmd/edgeota

# .deb and .rpm packages of edgeota for amd64 and arm64 (scripts/packaging/build:
# nfpm, the version from git unless VERSION is given, ARCHES to choose).
package:
	@$(if $(VERSION),VERSION=$(VERSION)) $(if $(ARCHES),ARCHES="$(ARCHES)") scripts/packaging/build

# Everything CI runs (.ci/run calls this target).
test: deps fmt vet lint unit packaging fuzz-short sweep scenarios bench-once

deps:
	@scripts/ensure-system-packages

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; gofmt -d $$out; exit 1; fi

vet:
	$(GO) vet $(PKGS)

lint:
	$(GO) tool staticcheck $(PKGS)

unit:
	$(GO) test -race -short -count=1 -timeout 15m $(PKGS)

# The packages checked with real tools (test/package_test.go, skipped by
# unit's -short): make package's script for amd64 and arm64, lintian,
# systemd-analyze verify and security, and dpkg install, upgrade, remove
# and purge in a Debian root made by debootstrap, then the units under its
# own systemd (systemd-nspawn); about 2 minutes.
packaging:
	$(GO) test -count=1 -timeout 15m -run '^TestPackage$$' -v ./test/

# The exhaustive power-cut sweeps, without -race, printing their counts.
sweep:
	@$(GO) test -count=1 -timeout 10m -run 'Sweep|Wear' -v ./nodeagent/... | \
		awk '/sweep: |updates of/{print} /^(FAIL|--- FAIL)/{print; bad=1} END{exit bad}'

# The shipped fleet scenarios (firmware-sim/scenarios, the 1,000-node
# large-fleet.yaml among them; TestDownloadGroups checks long-link.yaml's
# Q-Block2 and lock-step groups), and the gateway killed with SIGKILL in the
# middle of a 2,000-node rollout (TestKill9At2000Nodes, about a minute),
# without -race: the race detector allows 8,128 goroutines, the simulator
# runs 11 a node.
scenarios:
	@$(GO) test -count=1 -timeout 15m -run 'TestShippedScenarios|TestDownloadGroups' -v ./firmware-sim/fleet/ | \
		awk '/^(PASS|FAIL) |expectations passed|^    --- |^--- |^ +FAIL |^ +(scenario|seed|time|cost) /{print} /^(FAIL|--- FAIL)/{bad=1} END{exit bad}'
	@$(GO) test -count=1 -timeout 10m -run '^TestKill9At2000Nodes$$' -v ./test/ | \
		awk '/^(PASS|FAIL|ok) |^--- |^ +FAIL |scale_kill_test/{print} /^(FAIL|--- FAIL)/{bad=1} END{exit bad}'

# The 2,000-node scenario of issue 21 with its figures (the README's Scale
# section): an in-process gateway and broker, 2,000 nodes, a 32 KiB model.
scale: build
	@echo "commit $$(git rev-parse --short HEAD 2>/dev/null || echo unknown), $$(nproc) cores, ulimit -n $$(ulimit -n)"
	$(BIN) sim run firmware-sim/scenarios/scale/fleet-2000.yaml --quiet

# Every benchmark of the module once (b.N = 1, without -race), so that a
# change that breaks one fails CI instead of rotting until someone measures.
# A run of 1 is no measurement: the result lines are counted, not printed
# (make bench prints figures).
bench-once:
	@$(GO) test -count=1 -timeout 15m -run '^$$' -bench . -benchtime 1x $(PKGS) | \
		awk '/^Benchmark[^ \t]*[ \t]+[0-9]+[ \t]/{n++; next} /^(goos|goarch|pkg|cpu):/||/^PASS$$/{next} {print} END{print "benchmarks run once: " n+0}'

# A short run of every Fuzz target (scripts/fuzz-all: one line per target,
# fails on a crasher), a few at a time.
fuzz-short:
	@FUZZTIME=$(FUZZTIME_SHORT) scripts/fuzz-all

fuzz:
	@FUZZTIME=$(FUZZTIME) scripts/fuzz-all

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 $(PKGS) | tee bench.txt

demo: build
	@scripts/demo

# The gateway's container image, with buildah (as root, chroot isolation).
# Neither target is part of make test: the build compiles edgeota again, a
# minute or more; make test lints the Containerfile instead
# (TestContainerfile in cmd/edgeota, BuildKit's parser, no tools needed).
image:
	@scripts/ensure-system-packages image
	scripts/packaging/build-image

image-test:
	@scripts/ensure-system-packages image
	$(GO) test -count=1 -timeout 15m -run '^TestContainerImage$$' -v ./test/

clean:
	rm -rf bin demo-out bench.txt dist
