# writeback — the two commands are `make run` and `make test`.
TEMPORAL_CLI_VERSION := v1.5.1
BIN := $(CURDIR)/bin
TEMPORAL := $(BIN)/temporal
HELM := $(BIN)/helm
HELM_VERSION := v3.22.0
WORKFLOWCHECK := $(BIN)/workflowcheck
WORKFLOWCHECK_VERSION := v0.6.0
export WRITEBACK_TEMPORAL_CLI := $(TEMPORAL)

.PHONY: run test test-short lint tools fuzz chaos bench

## run: dev server with UI, TCS simulator, worker, starter and a demo batch (Ctrl-C stops all)
run: $(TEMPORAL)
	@scripts/run.sh

## test: every test (unit, replay, integration against a real dev server, RabbitMQ and the simulator)
test: $(TEMPORAL) $(HELM) $(WORKFLOWCHECK)
	@scripts/test.sh

## test-short: unit and replay tests only, no servers
test-short:
	go test -short -count=1 ./...

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

tools: $(TEMPORAL) $(HELM) $(WORKFLOWCHECK)

## chaos: 20,000 records through the real stack under every fault, beside the pre-fix consumer (about 15 min)
chaos: $(TEMPORAL)
	go run ./bench chaos $(CHAOS_ARGS)

## bench: speed (ceiling, P1..P4, history events), large bodies, protecting TCS (cap, outage mode, late commits) into BENCHMARKS.md
bench: $(TEMPORAL)
	go run ./bench speed $(BENCH_ARGS)
	go run ./bench bodies
	go run ./bench protect

## fuzz: the message decoder's fuzz target for a minute
fuzz:
	go test ./contract -run XXX -fuzz FuzzDecode -fuzztime 60s

## lint: formatting, go vet, and workflowcheck (a workflow change that is not deterministic fails here)
lint: $(WORKFLOWCHECK)
	gofmt -l . | (! grep .)
	go vet ./...
	$(WORKFLOWCHECK) ./...
