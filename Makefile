# qmq-go — see README.md. `make run` starts the bundle on embedded defaults, `make test` runs every test.
SHELL := /bin/bash
GO ?= go
BIN := bin/qmq
TOOLS := $(CURDIR)/.tools
# Built tools are also kept outside the checkout so that fresh clones (CI) reuse them.
TOOLS_CACHE ?= $(HOME)/.cache/qmq-go-tools
CONSUL_VERSION := v1.20.6
CONSUL := $(TOOLS)/bin/consul
export PATH := $(TOOLS)/bin:$(PATH)

# Packages whose tests exercise goroutines: run under the race detector.
RACE_PKGS := ./conf/... ./protocol/... ./consul/... ./services/... ./cmd/... ./client/... ./storage/...

.PHONY: all build run dev metaserver test vet fmt fuzz consul clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/qmq

## run: the main job on embedded defaults: metaserver (SQLite) + one broker group in one process under
## ./data/dev, the broker registered automatically (`qmq dev`). Ctrl-C stops it; a restart keeps the data.
run: build
	$(BIN) dev --data data/dev

## dev: the same as run.
dev: run

## metaserver: a metaserver alone on the embedded SQLite store under ./data, with the sample config in
## ./conf (the install guide's registration steps run against it unchanged).
metaserver: build
	$(BIN) metaserver --conf conf

## test: everything, against real MariaDB (127.0.0.1:3306) and a real Consul agent (built by `make consul`).
test: consul vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.tools/*'))" || { echo "gofmt needed on:"; gofmt -l .; exit 1; }
	$(GO) test -race -count=1 -timeout 20m $(RACE_PKGS)
	$(GO) test -count=1 -timeout 20m $$($(GO) list ./... | grep -v -E '/(conf|protocol|consul|services|cmd|client|storage)(/|$$)')

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

## fuzz: run every fuzz target for FUZZTIME (default 60s) each.
FUZZTIME ?= 60s
fuzz:
	@for t in $$($(GO) test ./protocol -list 'Fuzz.*' | grep ^Fuzz); do \
	  echo "== $$t"; $(GO) test ./protocol -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -parallel 1 || exit 1; done

## consul: build the consul agent from the Go module proxy into .tools/bin (about 5 minutes once, then cached).
consul: $(CONSUL)
$(CONSUL):
	@mkdir -p $(TOOLS)/bin $(TOOLS_CACHE)
	@if [ -x $(TOOLS_CACHE)/consul-$(CONSUL_VERSION) ]; then \
	  cp $(TOOLS_CACHE)/consul-$(CONSUL_VERSION) $(CONSUL); \
	else \
	  echo "building consul $(CONSUL_VERSION) from the Go module proxy (about 5 minutes, once)"; \
	  rm -rf $(TOOLS)/consul-build && mkdir -p $(TOOLS)/consul-build && cd $(TOOLS)/consul-build && \
	  printf 'module qmqtools/consulbuild\n\ngo 1.24\n' > go.mod && \
	  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/hashicorp/consul"\n' > tools.go && \
	  GONOSUMDB=github.com/hashicorp/consul-awsauth GOFLAGS=-mod=mod $(GO) get github.com/hashicorp/consul@$(CONSUL_VERSION) && \
	  GONOSUMDB=github.com/hashicorp/consul-awsauth GOFLAGS=-mod=mod $(GO) build -o $(CONSUL) github.com/hashicorp/consul && \
	  cp $(CONSUL) $(TOOLS_CACHE)/consul-$(CONSUL_VERSION); \
	fi
	@$(CONSUL) version | head -1

clean:
	rm -rf bin data
