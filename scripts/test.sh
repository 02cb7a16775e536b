#!/usr/bin/env bash
# make test: every test. Starts RabbitMQ if none is running (and stops it again), then runs go test;
# the Go tests start their own Temporal dev servers from bin/temporal and TCS simulators.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

started_rabbit=""
read -r host port < <(amqp_host_port)
if ! port_open "$host" "$port"; then
  if command -v rabbitmq-server >/dev/null; then
    echo "RabbitMQ is not running on $host:$port: starting it for the tests"
    rabbitmq-server -detached
    wait_for "$host" "$port" 60 RabbitMQ
    started_rabbit=1
  else
    echo "RabbitMQ is not running on $host:$port and rabbitmq-server is not installed (apt-get install rabbitmq-server);" >&2
    echo "the intake tests need it." >&2
    exit 1
  fi
fi
stop_rabbit() { [ -n "$started_rabbit" ] && rabbitmqctl stop >/dev/null 2>&1 || true; }
trap stop_rabbit EXIT

go vet ./...
bin/workflowcheck ./...   # workflow code stays deterministic (make lint runs it too)
# One package at a time: some tests stop RabbitMQ or close all its connections.
go test -p 1 -count=1 -timeout 40m ./... "$@"
