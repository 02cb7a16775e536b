#!/usr/bin/env bash
# make run: the whole system on this machine. Temporal dev server with UI (data kept in .data/ between
# runs), the TCS simulator, the worker, the starter consuming RabbitMQ, and a demo batch.
# Ctrl-C stops all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

TEMPORAL_PORT=${TEMPORAL_PORT:-7233}
UI_PORT=${UI_PORT:-8233}
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@localhost:5672/}
export TEMPORAL_ADDRESS=127.0.0.1:$TEMPORAL_PORT
export TCS_URL=http://127.0.0.1:8081 TCS_TOKEN=${TCS_TOKEN:-dev-token}
DEMO=${DEMO:-200}
mkdir -p .data/logs bin

read -r host port < <(amqp_host_port)
if ! port_open "$host" "$port"; then
  cat >&2 <<MSG
RabbitMQ is not reachable at $host:$port (AMQP_URL=$AMQP_URL).
Start one, e.g.:  rabbitmq-server -detached     (Debian: apt-get install rabbitmq-server)
or point AMQP_URL at yours, then run make run again.
MSG
  exit 1
fi
for p in "$TEMPORAL_PORT" "$UI_PORT" 8081 8082 9464 9465; do
  if port_open 127.0.0.1 "$p"; then echo "port $p is already in use: is another make run still going?" >&2; exit 1; fi
done

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "stopping..."
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

echo "building..."
go build -o bin/worker ./worker
go build -o bin/tcssim ./tcssim
[ -d starter ] && go build -o bin/starter ./starter

# The same flags as internal/devserver (search attributes, task-queue priority).
sa=()
for k in WritebackKind WritebackRecordId WritebackState WritebackFailure; do sa+=(--search-attribute "$k=Keyword"); done
bin/temporal server start-dev --ip 127.0.0.1 --port "$TEMPORAL_PORT" --ui-port "$UI_PORT" \
  --db-filename .data/temporal.db --sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal \
  --dynamic-config-value matching.useNewMatcher=true \
  --log-level warn "${sa[@]}" >.data/logs/temporal.log 2>&1 &
pids+=($!)
wait_for 127.0.0.1 "$TEMPORAL_PORT" 30 "Temporal dev server"

# The simulator accepts the same token the worker sends: a user's own TCS_TOKEN works.
TCSSIM_TOKEN="$TCS_TOKEN" bin/tcssim >.data/logs/tcssim.log 2>&1 &
pids+=($!)
wait_for 127.0.0.1 8081 10 "TCS simulator"

bin/worker >.data/logs/worker.log 2>&1 &
pids+=($!)
wait_for 127.0.0.1 9464 30 "worker"

if [ -x bin/starter ]; then
  bin/starter consume >.data/logs/starter.log 2>&1 &
  pids+=($!)
  wait_for 127.0.0.1 9465 30 "starter"
  bin/starter publish --demo "$DEMO" >.data/logs/publish.log 2>&1 || echo "demo publish failed: see .data/logs/publish.log"
fi

cat <<BANNER

  writeback is running.
  Temporal UI      http://localhost:$UI_PORT/namespaces/default/workflows
  Dead letters     http://localhost:$UI_PORT/namespaces/default/workflows?query=WritebackState%3D%22DeadLettered%22
  Worker metrics   http://127.0.0.1:9464/metrics     Starter metrics  http://127.0.0.1:9465/metrics
  TCS simulator    http://127.0.0.1:8081 (token: \$TCS_TOKEN, dev-token unless you set it), admin http://127.0.0.1:8082/admin/stats
  Logs             .data/logs/   (CRITICAL lines: grep CRITICAL .data/logs/worker.log)

  The demo's dead letters are records TCS does not know. To see them through:
    go run ./starter deadletters                                       # grouped by cause, with the commands
    curl -X POST 127.0.0.1:8082/admin/known -d '{"all":true}'          # "fix" TCS: every record known
    go run ./starter retry --group tcs-404 --reason "records created" --by you   # a job: canary first
    go run ./starter history --workflow-id placement-esr/…             # one record's story
    go run ./starter tcs status                                        # TCS mode and cap for every worker
  Start one by hand:    bin/temporal workflow start --type RecordPlacementExport --task-queue writeback \\
                          --workflow-id placement-esr/101/A.DAT \\
                          --input '{"placementId":101,"positionNumber":1,"positionId":2,"filename":"A.DAT","exportedAt":"2021-07-28T13:10:00Z"}'

  Ctrl-C stops all of it.
BANNER
wait -n "${pids[@]}" || true
echo "a component stopped: see .data/logs/" >&2
