# fmn — two commands matter: `make run` and `make test`. Both work on a
# fresh Debian machine with only Go: what else they need is installed from
# Debian's packages (as root) or named in a clear message.

GO      ?= go
BIN     := bin/fmn
FMN_DATA_DIR ?= data

.PHONY: all build run test bench faults vet fmt clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/fmn

# The whole service on its embedded default: a private PostgreSQL cluster in
# $(FMN_DATA_DIR)/postgres, the built-in demo bus replaying the corpus, mail
# written to $(FMN_DATA_DIR)/mail, the web UI on http://127.0.0.1:8080.
run: build
	@scripts/ensure-postgres.sh
	FMN_DATA_DIR=$(FMN_DATA_DIR) FMN_DEMO=true FMN_DEMO_CORPUS=testdata/fedmsg-meta.jsonl $(BIN) serve

# Every test, against real PostgreSQL, SMTP and ZeroMQ, in parallel.
test: build
	@scripts/test.sh

# Benchmarks and load generators; each prints `bench: NAME VALUE UNIT` lines.
bench: build
	@scripts/bench.sh

# Issue 12's fault run: two instances, 3,000 messages, three kill -9s.
faults: build
	@scripts/faults.sh

vet:
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin .tmp
