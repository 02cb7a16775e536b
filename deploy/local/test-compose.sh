#!/usr/bin/env bash
# make test-compose: docker-compose.yml up for real on the engine of engine.sh (Debian's docker.io 20.10 and
# docker-compose 1.29, in a network namespace of its own), with the images of images.sh; the demo batch
# through, a dead letter retried by an operator, the UI and Prometheus checked; `down` leaves nothing running,
# and the machine's mounts, links, iptables rules and sysctls are as they were.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT_DIR=$PWD
HERE=$ROOT_DIR/deploy/local
PROJECT=writeback-compose-test
DEMO=${DEMO:-200}
export PATH=/usr/bin:$PATH   # the engine's own docker client (20.10), before a newer one elsewhere
say() { echo "test-compose: $*" >&2; }
. "$HERE/lib.sh"
fail() { say "FAIL: $*"; exit 1; }

if [ -z "${WRITEBACK_IN_NETNS:-}" ]; then
  for b in temporal temporal-server temporal-sql-tool temporal-ui-server; do
    [ -x "bin/$b" ] || fail "bin/$b is missing: make tools cluster-tools"
  done
  before=$(machine_snapshot)
  go mod download   # here, with the machine's network: the namespace has none (the build's proxy is this cache)
  started=$(date +%s)
  trap '"$HERE/engine.sh" down' EXIT
  envs=$("$HERE/engine.sh" up) || fail "the engine did not start"
  eval "$(sed 's/^/export /' <<<"$envs")"
  "$HERE/images.sh"
  rc=0
  nsenter --net="/run/netns/$NETNS" env WRITEBACK_IN_NETNS=1 "$0" || rc=$?
  "$HERE/engine.sh" down && trap - EXIT
  leftovers=$(pgrep -a -f '/run/writeback-engine|nxdns.py|http.server 8790|docker-proxy|containerd-shim' || true)
  [ -z "$leftovers" ] || fail "processes left after down: $leftovers"
  ! ip netns list | grep -qw "$NETNS" || fail "the namespace $NETNS is still there"
  after=$(machine_snapshot)
  [ "$before" = "$after" ] || { diff <(echo "$before") <(echo "$after") >&2; fail "the machine is not as it was"; }
  [ $rc -eq 0 ] || fail "see above (exit $rc)"
  say "PASS in $(( $(date +%s) - started )) s; the machine is as it was (mounts, links, iptables, sysctls, cgroups)"
  exit 0
fi

# --- inside the engine's network namespace: localhost is where the compose file publishes its ports ---
dc() { docker-compose -p "$PROJECT" -f docker-compose.yml "$@"; }
T() { bin/temporal --address localhost:7233 "$@"; }
# count QUERY: how many workflows match
count() { workflow_count localhost:7233 "$1"; }
# until SECONDS WHAT CMD...: poll CMD (a transient failure is retried) until it succeeds
until_ok() { local n=$1 what=$2; shift 2; for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done; fail "$what (after $n s)"; }

serve_modules   # the module proxy the Go build fetches from
proxy=$module_proxy_pid
LOGS=${WRITEBACK_ENGINE_ROOT:-/var/tmp/writeback-engine}/compose-test.log
BUILD_LOG=${WRITEBACK_ENGINE_ROOT:-/var/tmp/writeback-engine}/compose-build.log
cleanup() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    dc ps >&2 || true
    dc logs --no-color --timestamps >"$LOGS" 2>&1 || true
    say "the services' logs: $LOGS (last lines of each below)"
    for s in $(dc ps --services 2>/dev/null); do echo "--- $s" >&2; dc logs --no-color --tail 15 "$s" >&2 2>/dev/null || true; done
  fi
  dc down -v --remove-orphans >/dev/null 2>&1 || true
  kill $proxy 2>/dev/null || true
}
trap cleanup EXIT

say "building writeback's images (deploy/Dockerfile, local base images)"
t0=$(date +%s)
GO_IMAGE=writeback-local/golang RUNTIME_IMAGE=scratch GOPROXY=$MODULE_PROXY \
  COMPOSE_DOCKER_CLI_BUILD=1 DOCKER_BUILDKIT=1 timeout 1500 docker-compose -p "$PROJECT" -f docker-compose.yml build --progress=plain tcssim worker starter >"$BUILD_LOG" 2>&1 \
  || { tail -30 "$BUILD_LOG"; fail "build (log: $BUILD_LOG)"; }
say "built in $(( $(date +%s) - t0 )) s"

# Grafana is the one service with no stand-in: it is neither in Debian nor buildable from a Go module here.
SERVICES="postgresql temporal-schema temporal temporal-setup temporal-ui rabbitmq tcssim worker starter prometheus"
t0=$(date +%s)
timeout 600 docker-compose -p "$PROJECT" -f docker-compose.yml up -d --no-build $SERVICES || fail "compose up failed or did not finish in 10 min (see the logs below)"
until_ok 240 "worker ready" curl -fsS localhost:9464/readyz
until_ok 120 "starter ready" curl -fsS localhost:9465/readyz
say "up and ready in $(( $(date +%s) - t0 )) s"
for s in temporal-schema temporal-setup; do
  code=$(docker inspect -f '{{.State.ExitCode}}' "$(dc ps -q $s)")
  [ "$code" = 0 ] || fail "$s exited $code"
done
for sa in WritebackKind WritebackRecordId WritebackState WritebackFailure; do
  T operator search-attribute list | grep "$sa" >/dev/null || fail "search attribute $sa missing"
done

# The demo batch, published as an operator would, through the starter image.
t0=$(date +%s)
timeout 300 docker-compose -p "$PROJECT" -f docker-compose.yml run --rm --no-deps starter publish --demo "$DEMO" --seed 7 >/dev/null
settled() {
  local a b
  a=$(count 'WritebackState="Completed"') && b=$(count 'WritebackState="DeadLettered"') &&
    [ -n "$a" ] && [ -n "$b" ] && [ $((a + b)) -eq "$DEMO" ]
}
until_ok 300 "the demo batch settled ($DEMO records: Completed + DeadLettered)" settled
completed=$(count 'WritebackState="Completed"'); parked=$(count 'WritebackState="DeadLettered"')
[ "$parked" -eq "$(count 'WritebackState="DeadLettered" AND WritebackFailure="tcs-404"')" ] || fail "a demo dead letter is not an unknown record"
say "demo: $DEMO records in $(( $(date +%s) - t0 )) s: $completed completed, $parked dead-lettered (unknown to TCS)"

# A dead letter retried: TCS refuses one record (422) until the fault is cleared, then the operator retries it.
curl -fsS -X POST localhost:8082/admin/faults -d '{"errorRate":1,"errorStatus":422,"only":"/api/placements/7/esr-exported"}' >/dev/null
echo '{"placementId":7,"positionNumber":25000007,"positionId":6900007,"filename":"COMPOSE.DAT","exportedAt":"2026-12-05T12:00:00Z"}' \
  | dc run --rm --no-deps -T starter publish --file - --kind placement >/dev/null
wf=placement-esr/7/COMPOSE.DAT
until_ok 120 "$wf dead-lettered" test "$(count "WorkflowId=\"$wf\" AND WritebackState=\"DeadLettered\"")" = 1
curl -fsS -X POST localhost:8082/admin/faults -d '{}' >/dev/null
out=$(timeout 300 docker-compose -p "$PROJECT" -f docker-compose.yml run --rm --no-deps starter retry --workflow-id "$wf" --reason "compose test" --by ci --wait 60s)
echo "$out" | tr -s ' \n' ' ' | grep -q 'completed dead-lettered again still updating abandoned 1 0 0 0' \
  || fail "the retry did not report the record completed: $out"
until_ok 60 "$wf completed after the retry" test "$(count "WorkflowId=\"$wf\" AND WritebackState=\"Completed\"")" = 1
dups=$(curl -fsS localhost:8082/admin/stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["duplicates"])')
[ "$dups" = 0 ] || fail "TCS holds $dups duplicate records"
say "dead letter $wf retried and written; 0 duplicate rows in TCS"

# The UI and Prometheus (alert rules loaded, worker and starter scraped).
until_ok 60 "Temporal UI answers" curl -fsS localhost:8233/healthz
until_ok 60 "Prometheus ready" curl -fsS localhost:9090/-/ready
curl -fsS localhost:9090/api/v1/rules | grep WritebackDeadLetter >/dev/null || fail "Prometheus did not load the chart's alert rules"
up_targets() { curl -fsS localhost:9090/api/v1/targets | python3 -c 'import json,sys; t=json.load(sys.stdin)["data"]["activeTargets"]; sys.exit(0 if sum(x["health"]=="up" for x in t)>=2 else 1)'; }
until_ok 90 "Prometheus scrapes the worker and the starter" up_targets
say "UI answers; Prometheus loaded the alert rules and scrapes the worker and the starter"

t0=$(date +%s)
dc down -v --remove-orphans >/dev/null 2>&1
left=$(docker ps -aq | wc -l); [ "$left" = 0 ] || fail "$left containers left after down"
[ -z "$(docker volume ls -q)" ] || fail "volumes left after down -v"
say "down in $(( $(date +%s) - t0 )) s: no container, no volume left"
