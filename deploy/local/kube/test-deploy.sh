#!/usr/bin/env bash
# make test-deploy: a fresh local Kubernetes (deploy.sh up) with the previous chart version, then
#   1. `helm upgrade` from that chart (0.1.0, as of commit 25a9c72, unversioned workers) to this one (Worker
#      Versioning on: the hook makes build dev current): records through before and after;
#   2. the chart's PodDisruptionBudget, HorizontalPodAutoscaler, ServiceAccounts, NetworkPolicy, ServiceMonitor
#      and PrometheusRule as the API server accepted them; `helm test` passes, and fails naming the starter
#      while no starter consumes;
#   3. RECORDS records (default 1,000) through the release while a worker pod and the starter pod are deleted,
#      RabbitMQ's container is killed on the node, TCS fails and goes down, and the workers are rolled to a
#      new build (dev2) by `helm upgrade`: `bench chaos --profile kube`, run inside the cluster's network
#      namespace, with the chaos report (BENCHMARKS.md, section chaos-kube);
#   4. `helm rollback` to the build before: the hook makes it current again, records through;
#   5. rollouts that watch themselves, while records flow: a bad build stopped at its first step, rolled
#      back and its workers removed; a good build promoted through its steps (BENCHMARKS.md, rollouts);
#   6. `helm uninstall`: the record queues and the DLQ's messages stay in RabbitMQ;
#   7. deploy.sh down, and the machine as it was (mounts, links, iptables, sysctls, cgroups, processes).
# Temporal is the production profile's server on PostgreSQL (manifests/deps.yaml), as a deployment runs it.
# KEEP=1 leaves the cluster up at the end (make deploy-down removes it).
set -euo pipefail
cd "$(dirname "$0")/../../.."
HERE=deploy/local/kube
RELEASE=writeback
NAMESPACE=writeback
RECORDS=${RECORDS:-1000}
PREVIOUS_CHART_COMMIT=25a9c72   # chart 0.1.0, the last one before this wave's chart changes
say() { echo "test-deploy: $*" >&2; }
fail() { say "FAIL: $*"; exit 1; }
. deploy/local/lib.sh
started=$(date +%s)

before=$(machine_snapshot)
down() { "$HERE/deploy.sh" down >&2 || say "deploy.sh down failed"; }
[ -n "${KEEP:-}" ] || trap down EXIT
go mod download   # here, with the machine's network: the builds inside the namespace run offline
go -C bench build -o ../bin/harness . && go build -o bin/starter ./starter
git cat-file -e "$PREVIOUS_CHART_COMMIT^{commit}" 2>/dev/null || fail "commit $PREVIOUS_CHART_COMMIT (chart 0.1.0) is not in this clone"
prev=$(mktemp -d)
git archive "$PREVIOUS_CHART_COMMIT" deploy/helm/writeback | tar -x -C "$prev"
# 0.1.0's topology objects can only name a RabbitmqCluster of the cluster operator, which does not run
# here: it is installed without them (its starter declares the topology, as it always does), and with
# its default of unversioned workers.
envs=$(WRITEBACK_CHART="$prev/deploy/helm/writeback" \
  WRITEBACK_HELM_ARGS="--set rabbitmqTopology.enabled=false --set worker.versioning.deploymentName=" \
  "$HERE/deploy.sh" up dev) || fail "deploy.sh up with chart 0.1.0"
rm -rf "$prev"
eval "$(grep -E '^(KUBECONFIG|NETNS)=' <<<"$envs")"
in_ns() { nsenter --net="/run/netns/$NETNS" env GOPROXY=off "$@"; }
kc() { in_ns bin/kube/kubectl --kubeconfig "$KUBECONFIG" -n "$NAMESPACE" "$@"; }
helm() { in_ns bin/helm --kubeconfig "$KUBECONFIG" -n "$NAMESPACE" "$@"; }
rabbitmqctl() { in_ns bin/kube/kubectl --kubeconfig "$KUBECONFIG" -n writeback-deps exec deploy/rabbitmq -- rabbitmqctl -q "$@"; }
# current: the first line of `starter versioning status`, read whole (a `| head -1` would end the
# command with SIGPIPE under pipefail)
current() {
  local out; out=$(in_ns env TEMPORAL_ADDRESS=10.216.0.21:7233 bin/starter versioning status --deployment-name writeback) \
    || fail "starter versioning status"
  echo "${out%%$'\n'*}"
}
# settled: how many records are Completed or DeadLettered
settled() { workflow_count 10.216.0.21:7233 'WritebackState="Completed" OR WritebackState="DeadLettered"' nsenter --net="/run/netns/$NETNS"; }
# through N: a demo batch of N published by the release's starter pod settles within 3 minutes
through() {
  local n0 n; n0=$(settled) || fail "cannot count workflows"
  kc exec deploy/$RELEASE-starter -- /starter publish --demo "$1" >/dev/null || fail "publish --demo $1 in the starter pod"
  for _ in $(seq 1 90); do
    n=$(settled) && [ "$n" -ge $((n0 + $1)) ] && return 0
    sleep 2
  done
  fail "$1 demo records did not settle within 3 minutes ($n0 → ${n:-?})"
}

# The new build the chaos run and the rollouts roll to, built while steps 1 and 2 mostly wait on the cluster
images_log=$(mktemp)
"$HERE/images.sh" dev2 --writeback-only >"$images_log" 2>&1 &
images_pid=$!

# 1. From the previous chart version to this one
through 20
helm upgrade "$RELEASE" deploy/helm/writeback -f "$HERE/values-local.yaml" --set image.tag=dev \
  --set worker.versioning.buildId=dev --wait --timeout 5m >/dev/null || fail "helm upgrade from chart 0.1.0"
for q in placement scan dlq; do
  kc wait --for=condition=Ready "queue/$RELEASE-$q" --timeout 120s >/dev/null || fail "queue $q not reconciled after the upgrade"
done
current=$(current)
[[ "$current" == *"current build dev" ]] || fail "after the upgrade: $current"
through 20
history=$(helm history "$RELEASE" -o json | python3 -c 'import json,sys; print(" → ".join(r["chart"]+" "+r["status"] for r in json.load(sys.stdin)))')
say "helm upgrade from the previous chart: $history; $current; 20 records through before and after"

# 2. What the API server accepted, and helm test
for obj in poddisruptionbudget/$RELEASE-worker horizontalpodautoscaler/$RELEASE-worker serviceaccount/$RELEASE-worker \
    serviceaccount/$RELEASE-starter networkpolicy/$RELEASE servicemonitor/$RELEASE prometheusrule/$RELEASE; do
  kc get "$obj" -o name >/dev/null 2>&1 || fail "$obj is not in the cluster"
done
say "accepted by the API server: the worker's PodDisruptionBudget, the HorizontalPodAutoscaler, the ServiceAccounts, the NetworkPolicy, the ServiceMonitor, the PrometheusRule"
t0=$(date +%s)
out=$(helm test "$RELEASE" --timeout 3m --logs 2>&1) || fail "helm test: $out"
grep -q "ok    end to end" <<<"$out" || fail "helm test passed without the end-to-end check: $out"
say "helm test: passed in $(( $(date +%s) - t0 )) s: $(grep -c '^ok ' <<<"$out") checks ok"
kc scale deploy/$RELEASE-starter --replicas=0 >/dev/null || fail "scale the starter to 0"
for _ in $(seq 1 60); do [ -z "$(kc get pods -l app.kubernetes.io/component=starter -o name)" ] && break; sleep 1; done
if out=$(helm test "$RELEASE" --timeout 3m --logs 2>&1); then fail "helm test passed with no starter: $out"; fi
grep -q "FAIL  rabbitmq .* has no consumer" <<<"$out" || fail "helm test without a starter does not name it: $out"
kc scale deploy/$RELEASE-starter --replicas=1 >/dev/null && kc rollout status deploy/$RELEASE-starter --timeout 120s >/dev/null
say "helm test with no starter: failed, naming it ($(grep -o 'queue [^ ]* has no consumer' <<<"$out" | head -1))"

# 3. The chaos run, with a new build to roll to
wait $images_pid || { cat "$images_log" >&2; fail "building the images of build dev2"; }
rm -f "$images_log"
say "chaos: $RECORDS records through the release under pod loss, a RabbitMQ restart and a rolling upgrade"
in_ns bin/harness chaos --profile kube --kubeconfig "$KUBECONFIG" --namespace "$NAMESPACE" --release "$RELEASE" \
  --records "$RECORDS" --rate 20 --roll-to dev2 --outage 20s ${CHAOS_ARGS:-} || fail "the chaos run (above)"

# 4. Rollback to the build before the chaos run's: the hook makes it current again, and records flow
helm rollback "$RELEASE" 2 --wait --timeout 5m >/dev/null || fail "helm rollback to revision 2 (build dev)"
current=$(current)
[[ "$current" == *"current build dev" ]] || fail "after the rollback: $current"
through 20
say "helm rollback to build dev: $current; 20 records through"

# 5. Rollouts that watch themselves (worker.versioning.strategy rollout), while records flow: a bad build
#    (TCS answers 422 to every placement it writes: a mapping bug as TCS sees it) is stopped at its first
#    step, rolled back and its workers removed, the dead letters it made written by the current build;
#    then a good build (dev2) is promoted through its steps and the replaced build's workers removed.
tcs_faults() { in_ns curl -fsS -X POST -H 'Content-Type: application/json' -d "$1" http://10.216.0.22:8082/admin/faults >/dev/null; }
count() { workflow_count 10.216.0.21:7233 "$1" nsenter --net="/run/netns/$NETNS"; }
# flow: placements published by the starter pod, 10 a second, until the file $flowing is removed
flowing=$(mktemp)
flow() { while [ -e "$flowing" ]; do kc exec deploy/$RELEASE-starter -- /starter publish --demo 10 --kind placement >/dev/null 2>&1; sleep 0.7; done; }
# rollout BUILD: helm upgrade to BUILD (image dev2) with the rollout strategy replacing dev, records
# flowing, and the rollout Job's log once it has ended (its exit status on stderr)
rollout() {
  local build=$1 job rev
  : >"$flowing"; flow & local flower=$!
  helm upgrade "$RELEASE" deploy/helm/writeback --reuse-values --set image.tag=dev2 --set worker.versioning.buildId="$build" \
    --set worker.versioning.strategy=rollout --set worker.versioning.rollout.previousBuildId=dev \
    --set worker.versioning.rollout.previousImageTag=dev --set 'worker.versioning.rollout.steps={20,50}' \
    --set worker.versioning.rollout.step=20s --wait --timeout 5m >/dev/null || { rm -f "$flowing"; fail "helm upgrade to build $build (rollout)"; }
  rev=$(helm history "$RELEASE" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["revision"])')
  job=job/$RELEASE-rollout-$rev
  for _ in $(seq 1 200); do
    kc get "$job" -o jsonpath='{.status.conditions[*].type}' 2>/dev/null | grep -qE 'Complete|Failed' && break
    sleep 2
  done
  rm -f "$flowing"; wait $flower || true
  echo "revision: $rev"
  kc logs "$job" 2>&1
  echo "job: $(kc get "$job" -o jsonpath='{.status.conditions[?(@.status=="True")].type} succeeded={.status.succeeded} failed={.status.failed}')"
}
replicas() { kc get "deploy/$1" -o jsonpath='{.spec.replicas}'; }
settle_all() { # every record settles within 2 minutes
  local n
  for _ in $(seq 1 60); do
    n=$(count 'WritebackState="Updating"') && [ "$n" = 0 ] && return 0
    sleep 2
  done
  fail "$n records still Updating 2 minutes after the rollout"
}

placements0=$(count 'WritebackKind="placement"')
tcs_faults '{"errorRate":1,"errorStatus":422,"only":"/esr-exported","agent":"writeback-worker/bad"}'
t0=$(date +%s)
out=$(rollout bad)
tcs_faults '{}'
grep -q "build bad RolledBack" <<<"$out" || fail "the bad build was not rolled back: $out"
grep -qE "build bad: [0-9]+ records, 100% dead-lettered \(tcs-422 [0-9]+\)" <<<"$out" || fail "the rollback does not name TCS's answer (422): $out"
grep -qE '^job: .*Failed.* failed=1$' <<<"$out" || fail "the rollout Job of the bad build should fail once, not be retried: $out"
grep -qE 'step +50%' <<<"$out" && fail "the bad build reached its second step: $out"
grep -q "workers of build bad removed (Deployment $RELEASE-worker-bad scaled to 0)" <<<"$out" || fail "the bad build's workers were not removed: $out"
[ "$(replicas $RELEASE-worker-bad)" = 0 ] || fail "Deployment $RELEASE-worker-bad still has replicas"
current=$(current); [[ "$current" == *"current build dev" ]] || fail "after the bad build's rollout: $current"
bad_rev=$(sed -n 's/^revision: //p' <<<"$out")
bad_step=$(sed -nE 's/^ *step +20% +([0-9]+)s .*/\1/p' <<<"$out")
sed 's/^/  rollout job: /' <<<"$out" >&2
settle_all
on_bad='TemporalUsedWorkerDeploymentVersions="writeback:bad"'
touched=$(count "$on_bad"); dead=$(count "$on_bad AND WritebackState=\"DeadLettered\" AND WritebackFailure=\"tcs-422\"")
[ "$dead" -gt 0 ] || fail "the bad build dead-lettered nothing ($touched records ran on it): was it judged on anything?"
# its dead letters, parked on a build with no workers now, are written by the current build
in_ns env TEMPORAL_ADDRESS=10.216.0.21:7233 bin/starter retry --query "$on_bad AND WritebackFailure=\"tcs-422\"" \
  --reason "build bad rolled back" --canary 0 --rate 50 >/dev/null || fail "starter retry of the bad build's dead letters"
for _ in $(seq 1 60); do
  left=$(count "$on_bad AND WritebackState=\"DeadLettered\" AND WritebackFailure=\"tcs-422\"") && [ "$left" = 0 ] && break
  sleep 2
done
[ "$left" = 0 ] || fail "$left of the bad build's dead letters were not written after the retry"
settle_all
lost=$(count 'WritebackKind="placement" AND WritebackState!="Completed" AND WritebackFailure!="tcs-404"')
[ "$lost" = 0 ] || fail "$lost placements neither written nor unknown to TCS"
say "rollout of a bad build: rolled back ${bad_step:-?} s into its first 20 s step (20 %), $touched records ran on it, $dead dead-lettered (tcs-422), all written by build dev after a retry; its workers removed; 0 lost ($(( $(date +%s) - t0 )) s)"

t0=$(date +%s)
out=$(rollout dev2)
grep -q "build dev2 Promoted" <<<"$out" || fail "the good build was not promoted: $out"
grep -qE '^job: .*Complete.* succeeded=1 ' <<<"$out" || fail "the rollout Job of the good build did not complete: $out"
grep -q "workers of build dev removed (Deployment $RELEASE-worker-dev scaled to 0)" <<<"$out" || fail "build dev's workers were not removed: $out"
[ "$(replicas $RELEASE-worker-dev)" = 0 ] || fail "Deployment $RELEASE-worker-dev still has replicas"
current=$(current); [[ "$current" == *"current build dev2" ]] || fail "after the good build's rollout: $current"
settle_all
lost=$(count 'WritebackKind="placement" AND WritebackState!="Completed" AND WritebackFailure!="tcs-404"')
[ "$lost" = 0 ] || fail "$lost placements neither written nor unknown to TCS"
sed 's/^/  rollout job: /' <<<"$out" >&2
steps=$(sed -nE 's/^ *step +([0-9]+)% +([0-9]+s) .*/\1 % for \2/p' <<<"$out" | paste -sd, -)
say "rollout of a good build: promoted through its steps ($steps), build dev's workers removed, $(( $(count 'WritebackKind="placement"') - placements0 )) placements in both rollouts, 0 lost ($(( $(date +%s) - t0 )) s)"

# a rollout naming a previous build that is no longer current would remove the current build's workers
if out=$(helm upgrade "$RELEASE" deploy/helm/writeback --reuse-values --set worker.versioning.buildId=dev3 \
    --set worker.versioning.rollout.previousBuildId=dev 2>&1); then fail "a rollout replacing build dev (no longer current) was accepted"; fi
grep -q "workers of build dev2, which this upgrade would remove" <<<"$out" || fail "a rollout with a stale previousBuildId: $out"
[ "$(replicas $RELEASE-worker-dev2)" -gt 0 ] || fail "build dev2's workers are gone"
say "a rollout naming build dev as the previous build while dev2 is current: refused by helm ($(grep -o 'the Deployment [^ ]* runs [0-9]* workers of build dev2' <<<"$out"))"

# helm rollback to the bad build's revision (builds bad and dev; dev2 is current) would remove dev2's workers
if out=$(helm rollback "$RELEASE" "$bad_rev" --wait --timeout 2m 2>&1); then fail "helm rollback to revision $bad_rev (bad over dev) went through while dev2 is current"; fi
current=$(current); [[ "$current" == *"current build dev2" ]] || fail "after the refused rollback: $current"
[ "$(replicas $RELEASE-worker-dev2)" -gt 0 ] || fail "build dev2's workers are gone after the refused rollback"
say "helm rollback to the bad build's revision while dev2 is current: refused by its pre-rollback check; dev2 current, its workers running"
through 20

# 6. Uninstall keeps the queues and what they hold
dlq=$(rabbitmqctl list_queues name messages | awk '$1=="writeback.dlq"{print $2}')
helm uninstall "$RELEASE" --wait --timeout 3m >/dev/null || fail "helm uninstall"
queues=$(rabbitmqctl list_queues name messages)
for q in writeback.placement.exported writeback.scan.completed writeback.dlq; do
  grep -q "^$q\b" <<<"$queues" || fail "helm uninstall removed the queue $q"
done
dlq_after=$(awk '$1=="writeback.dlq"{print $2}' <<<"$queues")
[ "$dlq_after" = "$dlq" ] || fail "the DLQ held $dlq messages before helm uninstall and $dlq_after after"
say "helm uninstall: the three queues stay, the DLQ still holds its $dlq messages"

# 7. Down, and the machine as it was
if [ -z "${KEEP:-}" ]; then
  trap - EXIT
  down
  leftovers=$(pgrep -a -f '/run/writeback-kube|/var/tmp/writeback-kube|messaging-topology-operator' || true)
  [ -z "$leftovers" ] || fail "processes left after down: $leftovers"
  after=$(machine_snapshot)
  [ "$before" = "$after" ] || { diff <(echo "$before") <(echo "$after") >&2; fail "the machine is not as it was"; }
fi
say "PASS in $(( $(date +%s) - started )) s"
