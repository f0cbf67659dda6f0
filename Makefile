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

.PHONY: all build run test setup setup-build lint bpf-check unit interop fuzz bench bench-quick generate clean

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

# group-test runs after interop, not beside it: it must never share the machine with a
# qemu guest (a guest under TCG takes a core, and the group's timings are real time).
test: setup lint unit interop
	$(MAKE) --no-print-directory group-test

lint: bpf-check
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GOBIN)/staticcheck ./...

# The eBPF programs' bpf2go output is committed (building needs no clang); this
# regenerates it with clang into a scratch directory and fails if the committed files
# are stale. Needs clang and llvm-strip 14 (`make setup`).
bpf-check:
	bpf/gen.sh --check

# Unit tests, fuzz seed corpora, the race detector on the concurrent packages, and the
# invariants build of the allocator and of the packages whose teardown it checks. Interop packages run in `make interop`.
unit:
	tools/hugepages.sh run $(TEST_HUGEPAGES) -- $(GO) test -count=1 -timeout $(UNIT_TIMEOUT) \
		$$($(GO) list ./... | grep -v -e /tools/interop -e /tools/guest)
	$(GO) test -count=1 -race -timeout $(UNIT_TIMEOUT) ./engine/reactor/... ./engine/mem/... \
		./engine/bdev/... ./engine/nvmf/... ./engine/rpc/... ./engine/tcpconn/... \
		./engine/reservation/... ./engine/probe/... ./engine/scsi/... ./engine/iscsi/... ./engine/group/... \
		./engine/replication/... \
		./cgo/...
	$(GO) test -count=1 -tags invariants -timeout $(UNIT_TIMEOUT) ./engine/mem/... ./engine/bdev/... \
		./engine/nvmf/...

# Real peers: the Linux NVMe/TCP host and nvme-cli in a qemu guest, daemon restarts,
# kill -9 durability. Fails (never skips) under CI=true when qemu cannot run.
interop:
	tools/hugepages.sh run $(TEST_HUGEPAGES) -- \
	$(GO) test -count=1 -timeout $(INTEROP_TIMEOUT) -v ./tools/guest/ ./tools/interop/ 2>&1 | \
		grep -v -E '^ +[0-9.]+ (con|krn|qemu) \|' ; exit $${PIPESTATUS[0]}

# A storage group of three real daemons on 127.0.0.2-4, each in interrupt poll mode with
# the group's default timings (heartbeat 500 ms, election timeout 5 s): group_create and
# group_join, the admission rule with the BGL stopped (SIGSTOP), failover after kill -9 of
# the GL, a whole-group restart (tools/interop/group_test.go, build tag grouptest, so that
# `make interop` never runs it). About a minute; it prints the measured failover time.
GROUP_TIMEOUT ?= 10m
.PHONY: group-test bench-resv
group-test:
	$(GO) vet -tags grouptest ./tools/interop/
	$(GO) test -count=1 -timeout $(GROUP_TIMEOUT) -tags grouptest -run '^TestGroup' -v ./tools/interop/

# Reservation figures (not part of `make test`): register and acquire latency, p50 and p99,
# on a standalone node and through the three-node group, persistent and volatile; 4 KiB
# random-read IOPS at QD 32 with and without a reservation held, in one run.
bench-resv:
	$(GO) test -count=1 -tags grouptest -run '^$$' -bench 'Reservations$$' -benchtime 500x ./tools/interop/
	$(GO) test -count=1 -run '^$$' -bench 'RandRead4KReservation' -benchtime 5s ./tools/interop/

# Every fuzz target for FUZZTIME each (tools/fuzz.sh says how Go 1.26's deadline bug
# is told apart from a real failure).
fuzz:
	tools/fuzz.sh $(FUZZTIME)

# The benchmark harness: the workload matrix against sluice, the raw-socket limit and the
# peers found on this machine (tgt; SPDK's targets and spdk_nvme_perf with SPDK_DIR),
# targets pinned to cpu 0 and initiators to cpu 1, plus the packages' go test -bench
# against bench/baseline/micro.txt. Results in BENCH_OUT: report.md, results.json,
# points/*.json, SVG and PNG plots, results.txt and micro.txt (benchstat input).
# BENCH_QUICK=1 runs the tiny matrix that `make test` runs end to end.
BENCH_OUT   ?= bench/out
BENCH_QUICK ?=
SPDK_DIR    ?=
BENCH_ARGS  ?=
bench: build
	$(GO) build -o $(BIN)/ ./bench/cmd/sluicebench
	tools/hugepages.sh run 1024 -- $(BIN)/sluicebench -sluiced $(BIN)/sluiced -out $(BENCH_OUT) \
		$(if $(BENCH_QUICK),-quick) $(if $(SPDK_DIR),-spdk-dir $(SPDK_DIR)) $(BENCH_ARGS)

bench-quick:
	$(MAKE) bench BENCH_QUICK=1

clean:
	rm -rf $(BIN)
