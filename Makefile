SHELL := /bin/bash
GO ?= go
GOFMT ?= $(shell $(GO) env GOROOT)/bin/gofmt
WITH_DB := ./scripts/with-mariadb.sh

.DEFAULT_GOAL := build

build: ## Build bin/cm
	$(GO) build -o bin/cm ./cmd/cm

run: build ## Build and run `cm serve` (127.0.0.1:8088, sqlite:./data/cm.db)
	mkdir -p data
	./bin/cm serve

test: lint deps ## Lint, run all tests with -race against a throwaway MariaDB (full log: bin/test.log), then each fuzz target for 3 s
	@mkdir -p bin
	@set -o pipefail; $(WITH_DB) $(GO) test -v -race -shuffle=on -count=1 -timeout 25m ./... 2>&1 \
		| tee bin/test.log | ./scripts/test-summary.sh
	@GO=$(GO) FUZZTIME=3s ./scripts/fuzz.sh

fuzz: ## Run each fuzz target for FUZZTIME (default 60s); corpora in each package's testdata/fuzz/
	GO=$(GO) FUZZTIME=$(or $(FUZZTIME),60s) ./scripts/fuzz.sh

bench: deps ## Run each benchmark once against a throwaway MariaDB, one package at a time (figures: docs/benchmarks.md)
	$(WITH_DB) $(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -p 1 -timeout 30m ./...

lint: ## gofmt -l prints nothing, go vet, then golangci-lint (.golangci.yml; pinned in go.mod)
	@out=$$($(GOFMT) -l .); \
	if [ -n "$$out" ]; then echo "gofmt -l: these files need \`make fmt\`:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool golangci-lint run ./...

fmt: ## Format all Go files in place
	$(GOFMT) -w .

deps: ## Install missing Debian packages tests need (C compiler for -race, mariadb-server)
	GO=$(GO) ./scripts/install-deps.sh

clean: ## Remove build output
	rm -rf bin

help: ## List targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build run test fuzz bench lint fmt deps clean help
