#!/usr/bin/env bash
# Every image docker-compose.yml names, built on this machine for an engine with no registry (engine.sh):
#   - a Debian bookworm root filesystem (mmdebstrap, from Debian's packages) as the one base image;
#   - stand-ins tagged with the names the compose file uses, from Debian's packages and the production
#     profile's pinned binaries in bin/ (stand-ins/*.Dockerfile say what each is);
#   - writeback's own three images from deploy/Dockerfile, unchanged, with its build arguments pointed at
#     a local Go image, `scratch` and a Go module proxy served from this machine's module cache.
# Images already present are kept (the engine's data root is the cache); WRITEBACK_IMAGES_REBUILD=1 rebuilds.
#   images.sh                (engine.sh up first; DOCKER_HOST from it)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT_DIR=$PWD
HERE=$ROOT_DIR/deploy/local
CACHE=${WRITEBACK_ENGINE_ROOT:-/var/tmp/writeback-engine}
envs=$("$HERE/engine.sh" env) && eval "$(sed 's/^/export /' <<<"$envs")"
docker() { /usr/bin/docker "$@"; }   # the engine's own client (20.10), not a newer one on PATH
docker version >/dev/null 2>&1 || { echo "images: the engine is not running: deploy/local/engine.sh up" >&2; exit 1; }
say() { echo "images: $*" >&2; }
# have TAG [STAMP]: the image is there, built from the same recipe (STAMP, kept as a label)
have() {
  [ -z "${WRITEBACK_IMAGES_REBUILD:-}" ] &&
    [ "$(docker image inspect -f '{{index .Config.Labels "writeback.recipe"}}' "$1" 2>/dev/null)" = "${2:-}" ]
}
stamp() { cat "$@" | sha256sum | cut -c1-16; }

BASE=writeback-local/debian:bookworm
BASE_PACKAGES=postgresql-15,rabbitmq-server,prometheus,netcat-openbsd,ca-certificates,tzdata,procps,wget,curl
BASE_STAMP=$(echo "$BASE_PACKAGES" | stamp)
if ! have "$BASE" "$BASE_STAMP"; then
  say "building $BASE with mmdebstrap ($BASE_PACKAGES)"
  mmdebstrap --quiet --variant=minbase --include="$BASE_PACKAGES" bookworm "$CACHE/base.tar"
  docker import --change "LABEL writeback.recipe=$BASE_STAMP" "$CACHE/base.tar" "$BASE" >/dev/null
  rm -f "$CACHE/base.tar"
fi

# version pins, read from the Makefile (one place)
pin() { sed -n "s/^$1 := //p" Makefile; }
SERVER_VERSION=$(pin TEMPORAL_SERVER_VERSION); SERVER_VERSION=${SERVER_VERSION#v}
UI_VERSION=$(pin UI_SERVER_VERSION); UI_VERSION=${UI_VERSION#v}
MODCACHE=$(go env GOMODCACHE)
go mod download go.temporal.io/server@v$SERVER_VERSION github.com/temporalio/ui-server/v2@v$UI_VERSION
SERVER_MOD=$MODCACHE/go.temporal.io/server@v$SERVER_VERSION
UI_MOD=$MODCACHE/github.com/temporalio/ui-server/v2@v$UI_VERSION

# standin TAG DOCKERFILE FILE... : build a stand-in from a context holding only the given files
standin() {
  local tag=$1 dockerfile=$2; shift 2
  local recipe; recipe=$( (echo "$BASE_STAMP"; cat "$HERE/stand-ins/$dockerfile"; [ $# -eq 0 ] || find "$@" -type f -print0 | sort -z | xargs -0r cat) | stamp)
  have "$tag" "$recipe" && return
  local ctx; ctx=$(mktemp -d)
  for f in "$@"; do cp -rL "$f" "$ctx/"; done
  say "building $tag ($dockerfile)"
  docker build -q --label "writeback.recipe=$recipe" -t "$tag" -f "$HERE/stand-ins/$dockerfile" "$ctx" >/dev/null \
    || { rm -rf "$ctx"; say "building $tag failed"; exit 1; }
  rm -rf "$ctx"
}
standin postgres:15 postgres.Dockerfile "$HERE/stand-ins/postgres-entrypoint.sh"
standin rabbitmq:3.10-management rabbitmq.Dockerfile
standin prom/prometheus:v2.55.1 prometheus.Dockerfile
standin "temporalio/server:$SERVER_VERSION" temporal-server.Dockerfile bin/temporal-server "$SERVER_MOD/docker/scripts/sh/entrypoint.sh"
standin "temporalio/admin-tools:$SERVER_VERSION" admin-tools.Dockerfile bin/temporal bin/temporal-sql-tool "$SERVER_MOD/schema"
standin "temporalio/ui:$UI_VERSION" ui.Dockerfile bin/temporal-ui-server "$UI_MOD/config"
GO_STAMP=$( (echo "$BASE_STAMP"; go version; cat "$HERE/stand-ins/golang.Dockerfile") | stamp)
have writeback-local/golang "$GO_STAMP" || { say "building writeback-local/golang from /usr/local/go ($(go version))";
  docker build -q --label "writeback.recipe=$GO_STAMP" -t writeback-local/golang -f "$HERE/stand-ins/golang.Dockerfile" /usr/local/go >/dev/null; }
