# agentcloud — the two commands a new machine needs:
#   make run    build and start a node on the embedded defaults, with a demo
#   make test   install what the tests need, then lint and run the whole suite
GO      ?= go
BIN     ?= bin/agentcloud
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/agentcloud/agentcloud/internal/version.Version=$(VERSION)
QUICKJS := internal/isolate/quickjs/quickjs.wasm
# SBINIT is the process tier's small sandbox init, embedded in the binary
# (internal/sandbox/process/initexe.go); rebuilt when package sbinit changes.
SBINIT  := internal/sandbox/process/initexe/sbinit-init

.PHONY: FORCE all build run cluster-demo test check lint deps quickjs bench clean

all: build

$(QUICKJS): scripts/fetch-quickjs.sh
	./scripts/fetch-quickjs.sh

quickjs: $(QUICKJS)

# SBINIT_TARGET records the platform and Go toolchain the init is built
# for, rewritten only when they change: a cross-build or a new toolchain
# rebuilds the init (the daemon refuses a foreign or stale one at start).
SBINIT_TARGET := internal/sandbox/process/initexe/.target

$(SBINIT_TARGET): FORCE
	@t="$$($(GO) env GOOS GOARCH GOAMD64 GOARM64 | tr '\n' ' ')$$($(GO) version)"; \
	  [ "$$(cat $@ 2>/dev/null)" = "$$t" ] || echo "$$t" > $@

$(SBINIT): $(wildcard internal/sandbox/process/sbinit/*.go internal/sandbox/process/sbinit/initmain/*.go internal/sandbox/process/sbinit/initmain/sum/*.go internal/sandbox/process/srcsum/*.go) $(SBINIT_TARGET) go.mod go.sum
	$(GO) generate ./internal/sandbox/process

FORCE:

build: $(QUICKJS) $(SBINIT)
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/agentcloud

run: build
	./scripts/run.sh $(BIN)

# cluster-demo starts three nodes as one cluster, kills one with kill -9 and
# shows its sessions answering from the other two.
cluster-demo: build
	./scripts/cluster-demo.sh $(BIN)

# deps installs everything the full test suite uses (idempotent).
deps: $(QUICKJS) $(SBINIT)
	./scripts/deps.sh

lint: $(QUICKJS) $(SBINIT)
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>&1); if [ -n "$$out" ]; then echo "gofmt: unformatted files:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	$(GO) mod tidy -diff

# check is the quick gate: lint plus the short, race-enabled tests.
check: lint
	$(GO) test -race -short -count=1 ./...

# test is the whole suite: deps, lint, and every test with the race detector
# but the docs' (internal/doctest, see below). Lint runs beside the tests
# (its output is printed after them): many tests wait on processes, disks
# and timers, and lint fills those gaps, at a lower priority (nice) so it
# never holds back the tests, the longest phase. go test skips its own vet pass
# (lint runs the full one), takes the packages longest first
# (scripts/test-packages.sh) and runs three at a time for the same reason.
# internal/doctest runs beside them without -race: it drives the built
# binary, scripts and an in-process node through the docs' commands, and
# the race detector would only slow that node down; internal/daemon's own
# tests run the same code with it. It ends by saying how long each phase
# took (CI has a 20-minute budget). GORACE=atexit_sleep_ms=0: a race-built
# binary otherwise sleeps a second at every exit, and the tests run theirs
# as daemons, CLIs and sandbox inits hundreds of times.
TESTFLAGS ?= -race -count=1 -vet=off -p 3 -timeout 18m
test:
	@t0=$$(date +%s); $(MAKE) --no-print-directory deps || exit 1; t1=$$(date +%s); \
	tmp=$$(mktemp -d); ( nice -n 10 $(MAKE) --no-print-directory lint >$$tmp/lint 2>&1; echo $$? >$$tmp/rc; date +%s >$$tmp/end ) & \
	( $(GO) test -count=1 -vet=off -timeout 18m ./internal/doctest >$$tmp/doc 2>&1; echo $$? >$$tmp/docrc; date +%s >$$tmp/docend ) & \
	GORACE="$${GORACE:+$$GORACE }atexit_sleep_ms=0" $(GO) test $(TESTFLAGS) $$(./scripts/test-packages.sh | grep -v '/internal/doctest$$'); status=$$?; t2=$$(date +%s); wait; \
	echo "--- internal/doctest (without -race)"; cat $$tmp/doc; doc=$$(cat $$tmp/docrc); \
	echo "--- lint"; cat $$tmp/lint; lint=$$(cat $$tmp/rc); \
	echo "make test: deps $$((t1-t0))s, lint $$(( $$(cat $$tmp/end)-t1 ))s and doctest $$(( $$(cat $$tmp/docend)-t1 ))s (beside the tests), tests $$((t2-t1))s, total $$(( $$(date +%s)-t0 ))s"; \
	rm -rf $$tmp; [ $$status = 0 ] && [ $$lint = 0 ] && [ $$doc = 0 ]

bench: $(QUICKJS) $(SBINIT)
	$(GO) test -run '^$$' -bench . -benchtime 2s ./internal/store ./internal/daemon

clean:
	rm -rf bin $(SBINIT) $(SBINIT:-init=.sum) $(SBINIT_TARGET)
