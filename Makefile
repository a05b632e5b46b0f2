# qmq-go — see README.md. `make run` starts the bundle on embedded defaults, `make test` runs every test.
SHELL := /bin/bash
GO ?= go
BIN := bin/qmq
TOOLS := $(CURDIR)/.tools
# Built tools are also kept outside the checkout so that fresh clones (CI) reuse them.
TOOLS_CACHE ?= $(HOME)/.cache/qmq-go-tools
# The last MPL-2.0 releases (later ones are under the Business Source License); see README "Test agents".
CONSUL_VERSION := v1.16.1
CONSUL := $(TOOLS)/bin/consul
NOMAD_VERSION := v1.6.1
# Nomad's own go.mod replaces its api module with ./api, which a module build cannot see: the build
# takes the api module at the v1.6.1 tag's commit, and the replaces of Nomad 1.6.1's go.mod.
NOMAD_API_VERSION := v0.0.0-20230721134942-515895c7690c
NOMAD := $(TOOLS)/bin/nomad
STATICCHECK_VERSION := v0.8.2
# Named after the Go release too: staticcheck type-checks with the go/types it was built with, which
# refuses code for a newer Go, so a Go upgrade needs a rebuild.
STATICCHECK = $(TOOLS)/bin/staticcheck-$(STATICCHECK_VERSION)-$(shell $(GO) env GOVERSION)
export PATH := $(TOOLS)/bin:$(PATH)

# Packages whose tests exercise goroutines: run under the race detector.
RACE_PKGS := ./conf/... ./protocol/... ./consul/... ./services/... ./cmd/... ./client/... ./storage/... ./backup/...

.PHONY: all build run dev metaserver test perf vet staticcheck fmt fuzz consul nomad nomad-demo clean

all: build

# What `qmq version` prints: VERSION is the nearest tag, the commits since it and the abbreviated commit
# ("-dirty" with uncommitted changes); COMMIT the full hash, for builds that Go stamps with none (a git
# worktree, GOFLAGS=-buildvcs=false). Outside git both are empty and the binary says so.
VERSION = $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT = $(shell git rev-parse HEAD 2>/dev/null)

build:
	$(GO) build -ldflags "-X main.version=$(VERSION) -X main.commit=$(COMMIT)" -o $(BIN) ./cmd/qmq

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

## nomad-demo: the Nomad deployment on this machine (jobs/demo.sh): Consul and Nomad dev agents,
## the metaserver job and one broker pair with raw_exec; Ctrl-C stops everything.
## DEMO_ARGS=--bundle: the whole bundle (README, The whole bundle on Nomad); --check: try it and stop.
nomad-demo: build consul nomad
	jobs/demo.sh $(DEMO_ARGS)

## test: everything, against real MariaDB (127.0.0.1:3306) and real Consul and Nomad agents (built by
## `make consul` and `make nomad`), after go vet and staticcheck.
test: consul nomad vet staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.tools/*'))" || { echo "gofmt needed on:"; gofmt -l .; exit 1; }
	$(GO) test -race -count=1 -timeout 20m $(RACE_PKGS)
	$(GO) test -count=1 -timeout 20m $$($(GO) list ./... | grep -v -E '/(conf|protocol|consul|services|cmd|client|storage|backup)(/|$$)')

## perf: the tests that measure rather than check — throughput with and without a slave, replication lag
## under a steady load — and print figures (-v). They are named TestPerf* in files built only with the perf
## tag, so `make test` and its race run leave them out; here they run one package at a time, race-free.
PERF_PKGS = $$(grep -rl --include='*_test.go' '^//go:build perf' . | xargs -n1 dirname | sort -u)
perf:
	$(GO) test -tags perf -run '^TestPerf' -count=1 -v -p 1 -timeout 20m $(PERF_PKGS)

vet:
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(GO) vet -tags perf $(PERF_PKGS)

## staticcheck: honnef.co/go/tools over the main module; the first run builds it from the Go module proxy
## into .tools/bin (about a minute once per Go release, then cached).
staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...
$(STATICCHECK):
	@mkdir -p $(TOOLS)/bin $(TOOLS_CACHE)
	@if [ -x $(TOOLS_CACHE)/$(notdir $(STATICCHECK)) ]; then \
	  cp $(TOOLS_CACHE)/$(notdir $(STATICCHECK)) $@; \
	else \
	  echo "building staticcheck $(STATICCHECK_VERSION) from the Go module proxy (about a minute, once)"; \
	  rm -rf $(TOOLS)/staticcheck-build && \
	  GOBIN=$(TOOLS)/staticcheck-build $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) && \
	  mv $(TOOLS)/staticcheck-build/staticcheck $@ && \
	  cp $@ $(TOOLS_CACHE)/$(notdir $(STATICCHECK)); \
	fi
	@$@ -version

fmt:
	gofmt -w $$(git ls-files '*.go')

## fuzz: run every fuzz target of every package for FUZZTIME (default 60s) each, one at a time.
## FUZZMINIMIZE caps the time spent shrinking each new interesting input: at Go's default (60s) a
## minute of fuzzing can go by minimizing one input with 0 execs/s, which reads like a hang.
FUZZTIME ?= 60s
FUZZMINIMIZE ?= 5s
FUZZ_PKGS = $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u)
fuzz:
	@for p in $(FUZZ_PKGS); do \
	  for t in $$($(GO) test $$p -list 'Fuzz.*' | grep ^Fuzz); do \
	    echo "== $$p $$t"; $(GO) test $$p -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) -parallel 1 || exit 1; \
	  done; done

## consul: build the consul agent from the Go module proxy into .tools/bin (about 5 minutes once, then cached).
consul: $(CONSUL)
$(CONSUL):
	@mkdir -p $(TOOLS)/bin $(TOOLS_CACHE)
	@if [ -x $(TOOLS_CACHE)/consul-$(CONSUL_VERSION) ]; then \
	  cp $(TOOLS_CACHE)/consul-$(CONSUL_VERSION) $(CONSUL); \
	else \
	  echo "building consul $(CONSUL_VERSION) from the Go module proxy (about 5 minutes, once)"; \
	  rm -rf $(TOOLS)/consul-build && mkdir -p $(TOOLS)/consul-build && cd $(TOOLS)/consul-build && \
	  printf 'module qmqtools/consulbuild\n\ngo 1.24\n\n// copied from the go.mod of Consul: the excludes of a dependency do not apply to the main module\nexclude (\n\tgithub.com/hashicorp/go-msgpack v1.1.5\n\tgithub.com/hashicorp/go-msgpack v1.1.6\n)\n' > go.mod && \
	  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/hashicorp/consul"\n' > tools.go && \
	  GONOSUMDB=github.com/hashicorp/consul-awsauth GOFLAGS=-mod=mod $(GO) get github.com/hashicorp/consul@$(CONSUL_VERSION) && \
	  GONOSUMDB=github.com/hashicorp/consul-awsauth GOFLAGS=-mod=mod $(GO) build -o $(CONSUL) github.com/hashicorp/consul && \
	  cp $(CONSUL) $(TOOLS_CACHE)/consul-$(CONSUL_VERSION); \
	fi
	@$(CONSUL) version | head -1

## nomad: build the nomad agent from the Go module proxy into .tools/bin (about 8 minutes once, then cached).
nomad: $(NOMAD)
$(NOMAD):
	@mkdir -p $(TOOLS)/bin $(TOOLS_CACHE)
	@if [ -x $(TOOLS_CACHE)/nomad-$(NOMAD_VERSION) ]; then \
	  cp $(TOOLS_CACHE)/nomad-$(NOMAD_VERSION) $(NOMAD); \
	else \
	  echo "building nomad $(NOMAD_VERSION) from the Go module proxy (about 8 minutes, once)"; \
	  rm -rf $(TOOLS)/nomad-build && mkdir -p $(TOOLS)/nomad-build && cd $(TOOLS)/nomad-build && \
	  printf 'module qmqtools/nomadbuild\n\ngo 1.24\n\nreplace (\n\tgithub.com/Microsoft/go-winio => github.com/endocrimes/go-winio v0.4.13-0.20190628114223-fb47a8b41948\n\tgithub.com/hashicorp/hcl => github.com/hashicorp/hcl v1.0.1-0.20201016140508-a07e7d50bbee\n\tgithub.com/armon/go-metrics => github.com/armon/go-metrics v0.0.0-20230509193637-d9ca9af9f1f9\n)\n' > go.mod && \
	  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/hashicorp/nomad"\n' > tools.go && \
	  GOFLAGS=-mod=mod $(GO) get github.com/hashicorp/nomad@$(NOMAD_VERSION) github.com/hashicorp/nomad/api@$(NOMAD_API_VERSION) && \
	  GOFLAGS=-mod=mod $(GO) build -o $(NOMAD) github.com/hashicorp/nomad && \
	  cp $(NOMAD) $(TOOLS_CACHE)/nomad-$(NOMAD_VERSION); \
	fi
	@$(NOMAD) version | head -1

clean:
	rm -rf bin data
