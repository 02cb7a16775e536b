#!/usr/bin/env bash
# make test: every test. RabbitMQ is a node of the run's own (internal/testenv/cmd/testrabbit: its own
# node name, ports, data, settings and Erlang cookie under a temporary directory), stopped and removed
# on exit; the machine's RabbitMQ is left alone, and internal/testenv/cmd/machineguard proves it. The
# Go tests start their own Temporal dev servers from bin/temporal and TCS simulators.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# The production module, then the harness modules nested in it (the bench, the deploy tests, the
# integration and browser tests): each has its own go.mod, so the production one lists only what the
# binaries and their unit tests need.
for m in $MODULES; do
  ( cd "$m" && go mod tidy -diff && go vet ./... ) || { echo "module $m: go.mod not tidy or go vet failed" >&2; exit 1; }
done
bin/workflowcheck ./...   # workflow code stays deterministic (make lint runs it too)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/writeback-test.XXXXXX")
rabbit_pid="" guard_pid=""
finish() {
  local rc=$?
  set +e
  if [ -n "$rabbit_pid" ]; then kill -TERM "$rabbit_pid" 2>/dev/null; wait "$rabbit_pid"; fi
  if [ -n "$guard_pid" ]; then   # after the node has stopped: that left the machine's broker alone too
    kill -TERM "$guard_pid" 2>/dev/null
    wait "$guard_pid" || { [ "$rc" -ne 0 ] || rc=1; }
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

go build -o "$tmp/bin/" ./internal/testenv/cmd/machineguard ./internal/testenv/cmd/testrabbit
"$tmp/bin/machineguard" --ready "$tmp/guard.ready" &
guard_pid=$!
wait_file "$tmp/guard.ready" "$guard_pid" 120 "the machine RabbitMQ guard"

"$tmp/bin/testrabbit" --dir "$tmp/rabbit" --env-file "$tmp/rabbit.env" --name "writeback-test-$$@localhost" \
  --settings deploy/rabbitmq/rabbitmq.conf &
rabbit_pid=$!
wait_file "$tmp/rabbit.env" "$rabbit_pid" 120 "the tests' RabbitMQ node"
set -a; . "$tmp/rabbit.env"; set +a   # AMQP_URL, WRITEBACK_RABBIT_NODE, WRITEBACK_RABBIT_HOME

# One package at a time: some tests stop the node's app, close all its connections or change its settings.
# Within a package, the tests that call t.Parallel() run four at a time: they mostly wait on servers.
for m in $MODULES; do
  ( cd "$m" && go test -p 1 -parallel 4 -count=1 -timeout 40m ./... "$@" )
done
