#!/usr/bin/env bash
# make deploy-up / deploy-down: the local Kubernetes (cluster.sh) with writeback's Helm chart installed.
#   deploy.sh up [TAG]   cluster up, images built and loaded (TAG, default dev), cluster DNS, what the chart
#                        expects around it (deps.yaml), the CRDs of the operators it talks to, the RabbitMQ
#                        messaging-topology-operator, then `helm install --wait`; prints KUBECONFIG=… and NETNS=…
#   deploy.sh down       everything stopped and removed (cluster.sh down)
# make test-deploy installs another chart first: WRITEBACK_CHART (a chart directory) and WRITEBACK_HELM_ARGS
# (more helm arguments); the wait for the topology operator's queues is then left to it.
set -euo pipefail
cd "$(dirname "$0")/../../.."
REPO=$PWD
HERE=deploy/local/kube
RELEASE=writeback
NAMESPACE=writeback
say() { echo "deploy: $*" >&2; }

if [ "${1:-}" = down ]; then exec "$HERE/cluster.sh" down; fi
[ "${1:-}" = up ] || { echo "usage: $0 up [TAG] | down" >&2; exit 2; }
TAG=${2:-dev}
started=$(date +%s)
. deploy/local/lib.sh
need_packages containerd:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins iptables:iptables \
  conntrack:conntrack dockerd:docker.io mmdebstrap:mmdebstrap

envs=$("$HERE/cluster.sh" up) && eval "$envs"
ROOT=$(dirname "$KUBECONFIG")
kc() { nsenter --net="/run/netns/$NETNS" "$REPO/bin/kube/kubectl" --kubeconfig "$KUBECONFIG" "$@"; }
helm() { nsenter --net="/run/netns/$NETNS" "$REPO/bin/helm" --kubeconfig "$KUBECONFIG" "$@"; }

"$HERE/images.sh" "$TAG"

# CRDs, from the modules that define them (the module cache; nothing is fetched from elsewhere)
(cd "$HERE/tools/operators" && go mod download github.com/rabbitmq/messaging-topology-operator \
  github.com/prometheus-operator/prometheus-operator@v0.85.0)
MOD=$(go env GOMODCACHE)
TOPOLOGY_MOD=$MOD/github.com/rabbitmq/messaging-topology-operator@$(cd "$HERE/tools/operators" && go list -m -f '{{.Version}}' github.com/rabbitmq/messaging-topology-operator)
# every kind the topology operator watches (it waits for all of them), of which the chart uses four
kc apply --server-side -f "$TOPOLOGY_MOD/config/crd/bases/" >/dev/null
for crd in servicemonitors prometheusrules; do
  kc apply --server-side -f "$MOD/github.com/prometheus-operator/prometheus-operator@v0.85.0/example/prometheus-operator-crd/monitoring.coreos.com_$crd.yaml" >/dev/null
done

kc apply -f "$HERE/manifests/coredns.yaml" >/dev/null
kc create namespace writeback-deps --dry-run=client -o yaml | kc apply -f - >/dev/null
kc -n writeback-deps create configmap temporal-dynamicconfig --from-file=writeback.yaml=deploy/temporal/dynamicconfig.yaml \
  --dry-run=client -o yaml | kc apply -f - >/dev/null
SERVER_VERSION=$(sed -n 's/^TEMPORAL_SERVER_VERSION := v//p' Makefile)
sed -e "s/:TAG\$/:$TAG/" -e "s/:SERVER_VERSION\$/:$SERVER_VERSION/" "$HERE/manifests/deps.yaml" | kc apply -f - >/dev/null
for d in kube-system/coredns writeback-deps/rabbitmq writeback-deps/postgresql writeback-deps/temporal writeback-deps/tcssim; do
  kc -n "${d%/*}" rollout status "deploy/${d#*/}" --timeout 240s >/dev/null || { say "$d did not become ready"; exit 1; }
done
kc -n writeback-deps wait --for=condition=Complete job/temporal-setup --timeout 180s >/dev/null \
  || { say "Temporal's namespace and search attributes were not made: $(kc -n writeback-deps logs job/temporal-setup --tail 5 2>&1)"; exit 1; }

# The chart's secrets: the broker URL, the TCS token, and the management API for the topology operator.
kc create namespace "$NAMESPACE" --dry-run=client -o yaml | kc apply -f - >/dev/null
kc -n "$NAMESPACE" create secret generic writeback-amqp --from-literal=url=amqp://guest:guest@rabbitmq.writeback-deps:5672/ \
  --dry-run=client -o yaml | kc apply -f - >/dev/null
kc -n "$NAMESPACE" create secret generic writeback-tcs-token --from-literal=token=dev-token \
  --dry-run=client -o yaml | kc apply -f - >/dev/null
kc -n "$NAMESPACE" create secret generic writeback-rabbitmq-admin --from-literal=uri=http://10.216.0.20:15672 \
  --from-literal=username=guest --from-literal=password=guest --dry-run=client -o yaml | kc apply -f - >/dev/null

# The topology operator runs on the node (in the namespace, with the cluster's credentials), not as a pod:
# it has no image here. Webhooks off: they need a certificate the API server trusts, and only validate.
if ! { [ -f /run/writeback-kube/topology-operator.pid ] && kill -0 "$(cat /run/writeback-kube/topology-operator.pid)" 2>/dev/null; }; then
  nsenter --net="/run/netns/$NETNS" env OPERATOR_NAMESPACE=writeback-deps ENABLE_WEBHOOKS=false KUBECONFIG="$KUBECONFIG" \
    "$REPO/bin/kube/messaging-topology-operator" --metrics-bind-address 127.0.0.1:18080 \
    >"$ROOT/log/topology-operator.log" 2>&1 &
  echo $! >/run/writeback-kube/topology-operator.pid
fi

CHART=${WRITEBACK_CHART:-deploy/helm/writeback}
say "helm install $RELEASE from $CHART (values: the chart's defaults + $HERE/values-local.yaml, image tag and build ID $TAG ${WRITEBACK_HELM_ARGS:-})"
# shellcheck disable=SC2086 # WRITEBACK_HELM_ARGS: words
helm upgrade --install "$RELEASE" "$CHART" -n "$NAMESPACE" -f "$HERE/values-local.yaml" \
  --set image.tag="$TAG" --set worker.versioning.buildId="$TAG" ${WRITEBACK_HELM_ARGS:-} --wait --timeout 5m >/dev/null
[ -n "${WRITEBACK_CHART:-}" ] || for q in placement scan dlq; do
  kc -n "$NAMESPACE" wait --for=condition=Ready "queue/$RELEASE-$q" --timeout 120s >/dev/null \
    || { say "the topology operator did not declare queue $q; its log: $ROOT/log/topology-operator.log"; exit 1; }
done
say "ready in $(( $(date +%s) - started )) s: the release $RELEASE in namespace $NAMESPACE"
echo "KUBECONFIG=$KUBECONFIG"
echo "NETNS=$NETNS"
echo "# ip netns exec $NETNS bin/kube/kubectl --kubeconfig $KUBECONFIG -n $NAMESPACE get pods"
