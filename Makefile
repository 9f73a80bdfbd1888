# agentcloud — the two commands a new machine needs:
#   make run    build and start a node on the embedded defaults, with a demo
#   make test   install what the tests need, then lint and run the whole suite
GO      ?= go
BIN     ?= bin/agentcloud
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/agentcloud/agentcloud/internal/version.Version=$(VERSION)
QUICKJS := internal/isolate/quickjs/quickjs.wasm

.PHONY: all build run cluster-demo test check lint deps quickjs bench clean

all: build

$(QUICKJS): scripts/fetch-quickjs.sh
	./scripts/fetch-quickjs.sh

quickjs: $(QUICKJS)

build: $(QUICKJS)
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/agentcloud

run: build
	./scripts/run.sh $(BIN)

# cluster-demo starts three nodes as one cluster, kills one with kill -9 and
# shows its sessions answering from the other two.
cluster-demo: build
	./scripts/cluster-demo.sh $(BIN)

# deps installs everything the full test suite uses (idempotent).
deps: $(QUICKJS)
	./scripts/deps.sh

lint: $(QUICKJS)
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>&1); if [ -n "$$out" ]; then echo "gofmt: unformatted files:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	$(GO) mod tidy -diff

# check is the quick gate: lint plus the short, race-enabled tests.
check: lint
	$(GO) test -race -short -count=1 ./...

# test is the whole suite: deps, lint, and every test with the race detector.
test: deps lint
	$(GO) test -race -count=1 -timeout 18m ./...

bench: $(QUICKJS)
	$(GO) test -run '^$$' -bench . -benchtime 2s ./internal/store ./internal/daemon

clean:
	rm -rf bin
