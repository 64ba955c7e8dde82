# edgeota: build, test and demo. `make help` lists the targets.
GO       ?= go
BIN      := bin/edgeota
FUZZTIME ?= 10s
PKGS     := ./...

.PHONY: help build test deps fmt vet lint unit fuzz bench demo clean

help:
	@echo "make demo   build edgeota and run the end-to-end demo (no broker or server needed)"
	@echo "make test   what CI runs: system packages, fmt check, vet, staticcheck, go test -race"
	@echo "make build  build $(BIN)"
	@echo "make fmt    fail if gofmt would change a file (never rewrites)"
	@echo "make lint   staticcheck"
	@echo "make fuzz   run every Fuzz target for FUZZTIME (default $(FUZZTIME))"
	@echo "make bench  run the Go benchmarks, figures in bench.txt"

build:
	$(GO) build -o $(BIN) ./cmd/edgeota

# Everything CI runs (.ci/run calls this target).
test: deps fmt vet lint unit

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
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

fuzz:
	@FUZZTIME=$(FUZZTIME) scripts/fuzz-all

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 $(PKGS) | tee bench.txt

demo: build
	@scripts/demo

clean:
	rm -rf bin demo-out bench.txt
