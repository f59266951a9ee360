# Errand's two commands are `make dev` (run everything) and `make test`
# (run every check and test). Both start PostgreSQL and Redis first.
GO ?= go
TEST_FLAGS ?= -count=1 -timeout 20m

.PHONY: dev test services check generate build fmt fuzz chaos bench clean

dev: services
	$(GO) run ./cmd/errand dev

test: check
	@scripts/services.sh --with-browser
	$(GO) test $(TEST_FLAGS) ./...
	@FUZZ_TIME=$(FUZZ_SMOKE) scripts/fuzz.sh

# chaos runs the chaos suite with more work per scenario (make test runs it
# at scale 1) and prints the table of faults and outcomes.
CHAOS_SCALE ?= 10
chaos: services
	ERRAND_CHAOS_SCALE=$(CHAOS_SCALE) $(GO) test -count=1 -v -parallel 8 -timeout 30m ./internal/chaos/ | grep -v '^\s*{"time"'

# fuzz runs every fuzz target for FUZZ_TIME (make test runs them for FUZZ_SMOKE).
# The smoke run counts inputs rather than seconds: a short -fuzztime
# duration can end while a worker is mid-input and then fails with
# "context deadline exceeded" though nothing was found.
FUZZ_TIME ?= 1m
FUZZ_SMOKE ?= 5000x
fuzz:
	@FUZZ_TIME=$(FUZZ_TIME) scripts/fuzz.sh

# bench runs every benchmark against its raw baseline (errand bench all) at
# a size that finishes in under 10 minutes on a 2-core machine; raise
# BENCH_SCALE (1 = the sizes the issues name) for the full runs.
BENCH_SCALE ?= 0.1
bench: services
	$(GO) run ./cmd/errand bench -scale $(BENCH_SCALE) all

services:
	@scripts/services.sh

# check fails when code is unformatted, vet complains or the sqlc-generated
# code no longer matches queries/ and db/migrations/.
check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool sqlc vet
	@$(GO) tool sqlc diff || { echo "sqlc-generated code is stale: run 'make generate' and commit"; exit 1; }

generate:
	$(GO) tool sqlc generate

build:
	$(GO) build -o bin/errand ./cmd/errand

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin .errand
