#!/usr/bin/env bash
# The local Kubernetes' programs, built from the Go module proxy into bin/kube/ (make kube-tools; about 25
# minutes of CPU the first time, nothing once built). The modules under tools/ pin each one:
#   k8s/        Kubernetes v1.32.13: kube-apiserver, -controller-manager, -scheduler, -proxy, kubelet,
#               kubectl. k8s.io/kubernetes replaces its staging modules with ./staging/src (not in its
#               module zip), so `go install` cannot build it; its go.mod replaces each with the published
#               v0.32.13 (endpointslice v0.32.12: the proxy refuses v0.32.13's zip).
#   etcd/       etcd v3.5.36 (Debian's 3.4.23 is older than Kubernetes 1.32 supports); etcd's own module
#               has replace directives, so main.go wraps etcdmain.
#   operators/  RabbitMQ messaging-topology-operator v1.17.4: the first with a Queue deletionPolicy (the chart
#               retains the queues on uninstall); its client is Kubernetes 0.33, within the skew a 1.32
#               API server supports. The proxy refuses its version list, so `go install …@v1.17.4` fails.
# CoreDNS v1.12.0 installs with go install.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-$HERE/../../../bin/kube}"
mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
K8S_VERSION=v1.32.13
COREDNS_VERSION=v1.12.0

build() { # build DIR LDFLAGS PKG… into OUT
  local dir=$1 ld=$2; shift 2
  echo "kube-tools: building $* (from deploy/local/kube/tools/$dir)"
  (cd "$HERE/tools/$dir" && go build -trimpath -ldflags="$ld" -o "$OUT/" "$@")
}

# The version Kubernetes reports (kubectl version, the node), stamped as its own build does.
ld="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=32 -X $pkg.gitTreeState=clean"
done
for b in kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl; do
  [ -x "$OUT/$b" ] || { build k8s "$ld" $(printf 'k8s.io/kubernetes/cmd/%s ' kube-apiserver kube-controller-manager \
    kube-scheduler kube-proxy kubelet kubectl); break; }
done
[ -x "$OUT/etcd" ] && [ -x "$OUT/etcdctl" ] || build etcd "-s -w" . go.etcd.io/etcd/etcdctl/v3
[ "$(cat "$OUT/.operators.stamp" 2>/dev/null)" = "$(sha256sum <"$HERE/tools/operators/go.sum")" ] || {
  build operators "-s -w" github.com/rabbitmq/messaging-topology-operator
  sha256sum <"$HERE/tools/operators/go.sum" >"$OUT/.operators.stamp"; }
[ -x "$OUT/coredns" ] || { echo "kube-tools: installing CoreDNS $COREDNS_VERSION";
  GOBIN="$OUT" go install -trimpath -ldflags="-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"; }
echo "kube-tools: $OUT holds $(ls "$OUT" | tr '\n' ' ')"
