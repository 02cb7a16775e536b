#!/usr/bin/env bash
# Every image the local Kubernetes runs, built here (no registry) and loaded into its containerd:
#   - the compose stand-in for RabbitMQ 3.10 (Debian's package; ../images.sh);
#   - static binaries FROM scratch: pause (deploy/local/kube/pause) and CoreDNS (bin/kube);
#   - the compose stand-ins for PostgreSQL 15 and the production profile's Temporal server and admin tools
#     (the cluster's Temporal is the server a deployment runs, not the CLI's dev server);
#   - writeback's worker, starter and tcssim images from deploy/Dockerfile, as test-compose builds them.
# The engine (../engine.sh) builds them; it is stopped again if this script started it.
#   images.sh TAG [--writeback-only]   writeback's images are tagged writeback-local/writeback-{worker,starter,tcssim}:TAG;
#                                      --writeback-only: only those (a new build to roll to)
set -euo pipefail
cd "$(dirname "$0")/../../.."
HERE=deploy/local
TAG=${1:?usage: images.sh TAG [--writeback-only]}
ONLY_WRITEBACK=${2:-}
KUBE_RUN=/run/writeback-kube
say() { echo "kube images: $*" >&2; }

started_engine=
"$HERE/engine.sh" running || started_engine=1
envs=$("$HERE/engine.sh" up) && eval "$(sed 's/^/export /' <<<"$envs")"
[ -z "$started_engine" ] || trap '"$HERE/engine.sh" down' EXIT
docker() { /usr/bin/docker "$@"; }
images=("writeback-local/writeback-worker:$TAG" "writeback-local/writeback-starter:$TAG" "writeback-local/writeback-tcssim:$TAG")
if [ "$ONLY_WRITEBACK" != --writeback-only ]; then
  "$HERE/images.sh"

  # pause, CoreDNS; the server and its tools at the version the Makefile pins
  server=$(sed -n 's/^TEMPORAL_SERVER_VERSION := v//p' Makefile)
  images+=(writeback-local/pause:1 writeback-local/coredns:1.12.0 rabbitmq:3.10-management postgres:15
    "temporalio/server:$server" "temporalio/admin-tools:$server")
  ctx=$(mktemp -d)
  (cd deploy && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$ctx/pause" ./local/kube/pause)
  cp bin/kube/coredns "$ctx/"
  for b in pause:writeback-local/pause:1:scratch coredns:writeback-local/coredns:1.12.0:scratch; do
    IFS=: read -r binary repo tag base base_tag <<<"$b"
    docker build -q -f "$HERE/stand-ins/scratch-binary.Dockerfile" --build-arg BINARY="$binary" \
      --build-arg BASE="$base${base_tag:+:$base_tag}" -t "$repo:$tag" "$ctx" >/dev/null
  done
  rm -rf "$ctx"
fi

# writeback's images: the Go build fetches modules from this machine's cache, served on the engine's bridge
go mod download
. "$HERE/lib.sh"
serve_modules nsenter --net="/run/netns/$NETNS"
proxy=$module_proxy_pid
for target in worker starter tcssim; do
  say "building writeback-local/writeback-$target:$TAG"
  DOCKER_BUILDKIT=1 docker build -q -f deploy/Dockerfile --target "$target" \
    --build-arg GO_IMAGE=writeback-local/golang --build-arg RUNTIME_IMAGE=scratch --build-arg GOPROXY="$MODULE_PROXY" \
    -t "writeback-local/writeback-$target:$TAG" . >/dev/null || { kill $proxy; say "build of $target failed"; exit 1; }
done
kill $proxy

# into the cluster's containerd (its k8s.io namespace, where the kubelet looks)
say "loading ${#images[@]} images into the cluster's containerd"
docker save "${images[@]}" | ctr --address "$KUBE_RUN/containerd.sock" -n k8s.io images import - >/dev/null
say "done"
