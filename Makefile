# pgflex — two commands do everything on a fresh Debian 12 machine (as root):
#   make run    set-up, build, and start the daemon with a project-local data directory
#   make test   set-up, build, and run the whole test suite
GO       ?= go
BIN      := $(CURDIR)/bin/pgflex
DATA_DIR ?= $(CURDIR)/.pgflex-data
ADDR     ?= 127.0.0.1:8443
# SERVE_FLAGS: more flags for pgflex serve, e.g. make run SERVE_FLAGS=--msi-endpoint
SERVE_FLAGS ?=

.PHONY: setup build run test check bench clean

setup:
	bash scripts/setup.sh

build:
	$(GO) build -o $(BIN) ./cmd/pgflex

run: setup build
	@echo "pgflex: data in $(DATA_DIR); in another shell:"
	@echo "  export PATH=$(CURDIR)/bin:\$$PATH; pgflex login --profile $(DATA_DIR)/profile.json"
	@echo "pgflex: the portal is at https://portal.localhost:$(lastword $(subst :, ,$(ADDR)))/ (sign in with the link 'pgflex portal --query url -o tsv' prints)"
	$(BIN) serve --data-dir $(DATA_DIR) --addr $(ADDR) $(SERVE_FLAGS)

check:
	@unformatted=$$(gofmt -l cmd internal bench 2>/dev/null); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./...

# The suite drives real daemons, PostgreSQL servers and FUSE volumes; PGFLEX_BIN lets every
# package's tests share one build of the binary. Under CI=true (.ci/run) a test that would skip
# for a missing part of the machine (FUSE, root, PostgreSQL, ...) fails instead, and the
# packages without daemons run again under the race detector.
RACE_PKGS := ./internal/activitylog/... ./internal/arm/... ./internal/auth/... ./internal/dataenc/... \
	./internal/fsutil/... ./internal/procfs/... ./internal/regions/... ./internal/seal/... \
	./internal/store/... ./internal/testkit/... ./internal/graph/... ./internal/cloudmeta/...
test: setup build check
	PGFLEX_BIN=$(BIN) PGFLEX_TEST_REQUIRE=$(if $(filter true,$(CI)),all,) $(GO) test -count=1 -timeout 18m ./...
	$(if $(filter true,$(CI)),$(GO) test -race -count=1 -timeout 5m $(RACE_PKGS),)

bench: setup build
	PGFLEX_BIN=$(BIN) $(GO) test -run '^$$' -bench . -benchtime 3s ./internal/...

clean:
	rm -rf bin
