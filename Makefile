# writeback — the two commands are `make run` and `make test`.
TEMPORAL_CLI_VERSION := v1.5.1
BIN := $(CURDIR)/bin
TEMPORAL := $(BIN)/temporal
HELM := $(BIN)/helm
HELM_VERSION := v3.22.0
WORKFLOWCHECK := $(BIN)/workflowcheck
WORKFLOWCHECK_VERSION := v0.6.0
# The production profile (make run-cluster, make test-cluster): Temporal server and its sql tool, and
# the UI server the pinned CLI embeds.
TEMPORAL_SERVER_VERSION := v1.32.0
UI_SERVER_VERSION := v2.42.1
CLUSTER_TOOLS := $(BIN)/temporal-server $(BIN)/temporal-sql-tool $(BIN)/temporal-ui-server
export WRITEBACK_TEMPORAL_CLI := $(TEMPORAL)
# The production module (the binaries) and the harness modules nested in it, each with its own go.mod.
MODULES := . bench deploy integration
# What --version and writeback_build_info say of a `make build`: the tag (devel when untagged) and the
# commit, marked -dirty for uncommitted changes; set, not left to Go's VCS stamping, which GOFLAGS
# may turn off.
VERSION ?= $(shell git describe --tags --dirty 2>/dev/null || echo devel)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
BUILD_LDFLAGS := -X github.com/tis-writeback/writeback/internal/buildinfo.Version=$(VERSION) -X github.com/tis-writeback/writeback/internal/buildinfo.Revision=$(REVISION)
# The harness (bench/, a module of its own), built into bin/ and run from the repository's root.
HARNESS := go -C bench build -o $(BIN)/harness . && $(BIN)/harness

.PHONY: help build harness run test test-short lint tools cluster-tools fuzz chaos bench run-cluster test-cluster test-compose kube-tools deploy-up deploy-down test-deploy

# Bare `make` prints the targets; it starts nothing.
.DEFAULT_GOAL := help

## help: this list: each target with its `## name: description` comment (the default goal)
help:
	@echo "writeback — make <target>:"
	@awk '/^## [a-z][a-z-]*: / { sub(/^## /, ""); name = $$0; sub(/: .*/, "", name); sub(/^[^:]*: /, ""); printf "  %-14s %s\n", name, $$0 }' $(firstword $(MAKEFILE_LIST))
	@echo "Docs: README.md, docs/development.md (Make targets)."

## build: the three programs into bin/: worker, starter (intake and operator CLI), tcssim
build:
	go build -ldflags "$(BUILD_LDFLAGS)" -o $(BIN)/ ./worker ./starter ./tcssim

## harness: the harness behind run, chaos, bench and the deploy tests (bench/, a module of its own) into bin/harness
harness:
	go -C bench build -o $(BIN)/harness .

## run: dev server with UI, TCS simulator, worker, starter and a demo batch (Ctrl-C stops all)
run: $(TEMPORAL) build
	@$(HARNESS) run $(RUN_ARGS)

## test: every test (unit, replay, integration against a real dev server, RabbitMQ and the simulator)
test: $(TEMPORAL) $(HELM) $(WORKFLOWCHECK)
	@scripts/test.sh

## test-short: unit and replay tests only, no servers
test-short:
	for m in $(MODULES); do (cd $$m && go test -short -count=1 ./...) || exit 1; done

## the pinned Temporal CLI (v1.9.1 cannot be built with go install)
$(TEMPORAL):
	@echo "installing Temporal CLI $(TEMPORAL_CLI_VERSION) into bin/ (about 3 minutes the first time)"
	GOBIN=$(BIN) go install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION)

## helm, for the chart's lint and template tests (works offline)
$(HELM):
	GOBIN=$(BIN) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

## workflowcheck, Temporal's checker for non-deterministic workflow code
$(WORKFLOWCHECK):
	GOBIN=$(BIN) go install go.temporal.io/sdk/contrib/tools/workflowcheck@$(WORKFLOWCHECK_VERSION)

## tools: the pinned Temporal CLI, helm and workflowcheck into bin/
tools: $(TEMPORAL) $(HELM) $(WORKFLOWCHECK)

## the production profile's servers, built from their Go modules (about 11 minutes of CPU the first time)
$(BIN)/temporal-server:
	GOBIN=$(BIN)/.install-server go install go.temporal.io/server/cmd/server@$(TEMPORAL_SERVER_VERSION)
	mv $(BIN)/.install-server/server $@
$(BIN)/temporal-sql-tool:
	GOBIN=$(BIN)/.install-sql go install go.temporal.io/server/cmd/tools/sql@$(TEMPORAL_SERVER_VERSION)
	mv $(BIN)/.install-sql/sql $@
$(BIN)/temporal-ui-server:
	GOBIN=$(BIN)/.install-ui go install github.com/temporalio/ui-server/v2/cmd/server@$(UI_SERVER_VERSION)
	mv $(BIN)/.install-ui/server $@

## cluster-tools: the production profile's Temporal server, sql tool and UI server into bin/ (about 11 minutes of CPU the first time)
cluster-tools: $(CLUSTER_TOOLS)

## run-cluster: make run's demo on the production profile: Temporal server on PostgreSQL with its UI, three RabbitMQ nodes, two workers, two starters (Ctrl-C stops all)
run-cluster: $(TEMPORAL) $(CLUSTER_TOOLS) build
	@$(HARNESS) run --profile cluster $(RUN_ARGS)

## test-cluster: 2,500 records on the production profile while the record queues' leader node stops, Temporal restarts, workers and starters are SIGKILLed, and an operator holds TCS and runs, resumes and cancels a retry job
test-cluster: $(TEMPORAL) $(CLUSTER_TOOLS)
	$(HARNESS) chaos --profile cluster --records 2500 --rate 25 --starters 2 --outage 30s \
		--kill-worker-every 40s --kill-starter-every 50s --rabbit-down 20s --temporal-down 10s $(CHAOS_ARGS)

## test-compose: docker-compose.yml up for real on Debian's docker.io + docker-compose in a network namespace of its own, every image built here (deploy/local); the demo through, a dead letter retried, down leaves nothing
test-compose: $(TEMPORAL) $(CLUSTER_TOOLS)
	bash deploy/local/test-compose.sh

## chaos: 20,000 records through the real stack under every fault, beside the pre-fix consumer (about 15 min)
chaos: $(TEMPORAL)
	$(HARNESS) chaos $(CHAOS_ARGS)

## bench: speed (ceiling, P1..P4, history events; ceiling, P1, P4 on both profiles), large bodies, protecting TCS (cap, outage mode, late commits), the daily ledger over 10,000 records, into BENCHMARKS.md
bench: $(TEMPORAL) $(CLUSTER_TOOLS)
	$(HARNESS) speed $(BENCH_ARGS)
	$(HARNESS) speed --profiles --ceiling 1000 --p1 1000 --p4 300
	$(HARNESS) bodies
	$(HARNESS) protect
	$(HARNESS) ledger

## fuzz: the message decoder's fuzz target for a minute
fuzz:
	go test ./contract -run XXX -fuzz FuzzDecode -fuzztime 60s

## lint: formatting, go vet, and workflowcheck (a workflow change that is not deterministic fails here)
lint: $(WORKFLOWCHECK)
	gofmt -l . | (! grep .)
	for m in $(MODULES); do (cd $$m && go vet ./...) || exit 1; done
	$(WORKFLOWCHECK) ./...

## kube-tools: the local Kubernetes v1.32.13, etcd, CoreDNS and the RabbitMQ topology operator, built from their Go modules into bin/kube (about 25 minutes of CPU the first time)
kube-tools:
	bash deploy/local/kube/tools.sh

## deploy-up: a local single-node Kubernetes in a network namespace of its own, every image built here, the chart installed; prints KUBECONFIG= and NETNS=
deploy-up: $(TEMPORAL) $(HELM) $(CLUSTER_TOOLS) kube-tools
	bash deploy/local/kube/deploy.sh up

## test-deploy: a fresh deploy-up, then 2,000 records through the release while pods are deleted, RabbitMQ's container is killed and the workers are rolled to a new build under Worker Versioning (chaos report); helm uninstall keeps the queues; helm upgrade from the previous chart; down leaves the machine as found
test-deploy: $(TEMPORAL) $(HELM) $(CLUSTER_TOOLS) kube-tools
	bash deploy/local/kube/test-deploy.sh

## deploy-down: stops and removes all of it (the image cache in /var/tmp/writeback-kube and -engine is kept)
deploy-down:
	bash deploy/local/kube/deploy.sh down
