# sluice: the one entry point. `make run` starts the daemon on its embedded default;
# `make test` installs what it needs and runs every check, including the interop
# suites against the real Linux NVMe/TCP host under qemu.

SHELL     := /bin/bash
GO        ?= go
GOBIN     := $(shell $(GO) env GOPATH)/bin
BIN       := bin
DATA_DIR  ?= /var/lib/sluice
RUN_ARGS  ?=
FUZZTIME  ?= 30s
# 2 MiB hugepages reserved (and given back) around the tests.
TEST_HUGEPAGES ?= 256
# Bounded timeouts: the whole of `make test` stays well under an hour.
UNIT_TIMEOUT    ?= 15m
INTEROP_TIMEOUT ?= 20m

export PATH := $(PATH):$(GOBIN)

.PHONY: all build run test setup setup-build lint unit interop fuzz bench generate clean

all: build

setup-build:
	@tools/setup.sh build

setup:
	@tools/setup.sh test

build: setup-build
	$(GO) build -o $(BIN)/ ./tools/sluiced ./tools/sluicectl

# The daemon in the foreground on the embedded default: a persistent 1 GiB volume in
# $(DATA_DIR), exported over NVMe/TCP on 127.0.0.1:4420, discovery on 8009.
run: build
	@echo "Tip: reserve hugepages first for the fast path: echo 256 > /proc/sys/vm/nr_hugepages"
	$(BIN)/sluiced --data-dir $(DATA_DIR) $(RUN_ARGS)

test: setup lint unit interop

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GOBIN)/staticcheck ./...

# Unit tests, fuzz seed corpora, the race detector on the concurrent packages, and the
# invariants build of the allocator and of the packages whose teardown it checks. Interop packages run in `make interop`.
unit:
	tools/hugepages.sh run $(TEST_HUGEPAGES) -- $(GO) test -count=1 -timeout $(UNIT_TIMEOUT) \
		$$($(GO) list ./... | grep -v -e /tools/interop -e /tools/guest)
	$(GO) test -count=1 -race -timeout $(UNIT_TIMEOUT) ./engine/reactor/... ./engine/mem/... \
		./engine/bdev/... ./engine/nvmf/... ./engine/rpc/... ./cgo/...
	$(GO) test -count=1 -tags invariants -timeout $(UNIT_TIMEOUT) ./engine/mem/... ./engine/bdev/... \
		./engine/nvmf/...

# Real peers: the Linux NVMe/TCP host and nvme-cli in a qemu guest, daemon restarts,
# kill -9 durability. Fails (never skips) under CI=true when qemu cannot run.
interop:
	tools/hugepages.sh run $(TEST_HUGEPAGES) -- \
	$(GO) test -count=1 -timeout $(INTEROP_TIMEOUT) -v ./tools/guest/ ./tools/interop/ 2>&1 | \
		grep -v -E '^ +[0-9.]+ (con|krn|qemu) \|' ; exit $${PIPESTATUS[0]}

# Every fuzz target for FUZZTIME each (tools/fuzz.sh says how Go 1.26's deadline bug
# is told apart from a real failure).
fuzz:
	tools/fuzz.sh $(FUZZTIME)

# The harness pins sluiced (and the raw-socket limit server) to cpu 0 and its load
# generator to cpu 1; results land in bench/out (results.txt is benchstat input).
BENCH_ARGS ?= -count 5 -duration 5s
bench: build
	$(GO) build -o $(BIN)/ ./bench/cmd/sluicebench
	tools/hugepages.sh run 512 -- $(BIN)/sluicebench -sluiced $(BIN)/sluiced $(BENCH_ARGS)
	@echo "more: go test -run '^$$' -bench . ./engine/mem/ ./engine/nvmf/ ./engine/reactor/"

clean:
	rm -rf $(BIN)
