# One Makefile for SAM and for people.
#
# `sam build` (BuildMethod: makefile, ContextPath: .) runs
# `make build-<LogicalId>` here with ARTIFACTS_DIR set, and zips whatever the
# target leaves in it. provided.al2023 runs the file named `bootstrap`.

GO ?= go
# Reproducible builds: never rewrite go.mod/go.sum behind anyone's back, and
# don't stamp VCS data (SAM may build from a copy without .git).
GOFLAGS ?= -mod=readonly -buildvcs=false
export GOFLAGS

# Function logical IDs (template.yaml) and the ./functions/<dir> each is built from.
FUNCTIONS := ConnectFunction DisconnectFunction DefaultFunction PublishFunction FanoutFunction
dir_ConnectFunction    := connect
dir_DisconnectFunction := disconnect
dir_DefaultFunction    := default
dir_PublishFunction    := publish
dir_FanoutFunction     := fanout

# Static binary for Graviton; lambda.norpc drops the RPC shim that only the
# go1.x runtime needed.
LAMBDA_GOENV := CGO_ENABLED=0 GOOS=linux GOARCH=arm64
LAMBDA_BUILD := $(LAMBDA_GOENV) $(GO) build -tags lambda.norpc -trimpath -ldflags='-s -w'

.PHONY: all build clean test vet run bench fmt FORCE \
	build-ConnectFunction build-DisconnectFunction build-DefaultFunction build-PublishFunction \
	build-FanoutFunction

all: build

# The targets SAM calls, one per function (a static pattern rule: the names are
# spelled out so that `make -p` and readers see exactly which exist).
build-ConnectFunction build-DisconnectFunction build-DefaultFunction build-PublishFunction build-FanoutFunction: build-%:
	$(if $(ARTIFACTS_DIR),,$(error ARTIFACTS_DIR is not set: sam build sets it; use `make build` locally))
	@mkdir -p "$(ARTIFACTS_DIR)"
	$(LAMBDA_BUILD) -o "$(ARTIFACTS_DIR)/bootstrap" ./functions/$(dir_$*)

# `make build`: the same five binaries into bin/<LogicalId>/bootstrap.
build: $(FUNCTIONS:%=bin/%/bootstrap)

# FORCE: go's build cache decides what is stale, not make.
bin/%/bootstrap: FORCE
	@$(MAKE) --no-print-directory build-$* ARTIFACTS_DIR="$(CURDIR)/bin/$*"

FORCE:

# Off AWS nothing may look for credentials on the network (PROTOCOL.md §6):
# static dummy credentials, a region, and no EC2 metadata lookups.
test vet run bench: export AWS_EC2_METADATA_DISABLED := true
test vet run bench: export AWS_ACCESS_KEY_ID := dummy
test vet run bench: export AWS_SECRET_ACCESS_KEY := dummy
test vet run bench: export AWS_SESSION_TOKEN :=
test vet run bench: export AWS_REGION := us-east-1

# tools/ pins dynalite, the DynamoDB the store tests run against.
# go test also lints template.yaml with cfn-lint (internal/samtemplate's
# TestCfnLint, for AWS_REGION): skipped where cfn-lint is not installed,
# except under CI=true, where that fails.
test:
	npm ci --prefix tools --no-audit --no-fund
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 15m ./...

vet:
	$(GO) vet ./...

# The local stack: API Gateway + Lambda from template.yaml (PROTOCOL.md §7).
# Built, then run: `go run` would turn Ctrl-C's clean exit 0 into exit 1.
run:
	$(GO) build -o bin/notify ./cmd/notify
	./bin/notify local

# Issue 6 (BENCHMARKS.md): the fan-out loop's `go test` benchmarks, then the
# benchmark program: a `notify local` subprocess and 10,000 WebSocket clients,
# the machine's loopback limit, cold starts of the bootstraps under a local
# Runtime API, and DynamoDB request counts on dynalite. BENCHFLAGS passes
# flags to it (e.g. BENCHFLAGS='-runs 3 -skip-coldstart').
bench:
	@test -d tools/node_modules/dynalite || npm ci --prefix tools --no-audit --no-fund
	$(GO) test -run '^$$' -bench . -benchmem ./internal/apigw/ ./internal/memory/ ./internal/notify/
	$(GO) run ./bench/cmd/notifybench $(BENCHFLAGS)

fmt:
	gofmt -s -w $$($(GO) list -f '{{.Dir}}' ./...)

clean:
	rm -rf bin .aws-sam
