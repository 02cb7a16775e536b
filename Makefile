# writeback — the two commands are `make run` and `make test`.
TEMPORAL_CLI_VERSION := v1.5.1
BIN := $(CURDIR)/bin
TEMPORAL := $(BIN)/temporal
export WRITEBACK_TEMPORAL_CLI := $(TEMPORAL)

.PHONY: run test test-short lint tools

## run: dev server with UI, TCS simulator, worker, starter and a demo batch (Ctrl-C stops all)
run: $(TEMPORAL)
	@scripts/run.sh

## test: every test (unit, replay, integration against a real dev server, RabbitMQ and the simulator)
test: $(TEMPORAL)
	@scripts/test.sh

## test-short: unit and replay tests only, no servers
test-short:
	go test -short -count=1 ./...

## the pinned Temporal CLI (v1.9.1 cannot be built with go install)
$(TEMPORAL):
	@echo "installing Temporal CLI $(TEMPORAL_CLI_VERSION) into bin/ (about 3 minutes the first time)"
	GOBIN=$(BIN) go install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION)

tools: $(TEMPORAL)

lint:
	gofmt -l . | (! grep .)
	go vet ./...
