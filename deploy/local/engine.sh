#!/usr/bin/env bash
# A Docker engine of writeback's own for `make test-compose`: Debian's dockerd 20.10 with runc, run inside a
# network namespace this script creates, so that its bridge, its iptables rules, its published ports and every
# container address stay in that namespace; its own socket, data root (kept: the image cache) and cgroup parent.
#   engine.sh up     start it (idempotent); prints DOCKER_HOST=… and NETNS=…
#   engine.sh down   stop it by PID, remove the namespace and the cgroups it made
#   engine.sh env    the variables a client needs
set -euo pipefail

NETNS=${WRITEBACK_ENGINE_NETNS:-writeback-compose}
ROOT=${WRITEBACK_ENGINE_ROOT:-/var/tmp/writeback-engine}
RUN=/run/writeback-engine
SOCK=$RUN/docker.sock
PIDFILE=$RUN/dockerd.pid
CGROUP_PARENT=writeback-engine
BRIDGE_CIDR=10.213.0.1/24   # only inside the namespace
DNS_ADDR=10.213.1.1         # only inside the namespace, on its loopback
# --dns: the containers' DNS forwards names it does not know to nxdns.py on an address of its own, which
# answers NXDOMAIN at once, instead of to the host's nameserver (outside this machine, unreachable here).

say() { echo "engine: $*" >&2; }
. "$(dirname "$0")/lib.sh"

env_lines() {
  echo "DOCKER_HOST=unix://$SOCK"
  echo "NETNS=$NETNS"
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

up() {
  command -v dockerd >/dev/null || { say "dockerd missing: apt-get install docker.io docker-compose runc"; exit 1; }
  if running; then env_lines; return; fi
  mkdir -p "$RUN" "$ROOT"
  # What `ip netns add` and dockerd make outside their own directories, noted so that down removes it
  # only if this script made it: the /run/netns mount and /run/docker (dockerd's plugin directory).
  mountpoint -q /run/netns || echo /run/netns >"$ROOT/made-netns-mount"
  [ -e /run/docker ] || echo /run/docker >"$ROOT/made-run-docker"
  [ -e /run/containerd ] || echo /run/containerd >"$ROOT/made-run-containerd"   # its shims' sockets
  ip netns list | grep -qw "$NETNS" || ip netns add "$NETNS"
  ip netns exec "$NETNS" ip link set lo up
  nsenter --net="/run/netns/$NETNS" ip addr replace "$DNS_ADDR/32" dev lo
  nsenter --net="/run/netns/$NETNS" python3 "$(dirname "$0")/nxdns.py" "$DNS_ADDR" >"$ROOT/nxdns.log" 2>&1 &
  echo $! >"$RUN/nxdns.pid"
  # dockerd's identity key goes to the data root, not /etc/docker
  echo "{\"deprecated-key-path\": \"$ROOT/key.json\"}" >"$RUN/daemon.json"
  # The kernel has no CAP_SYS_RESOURCE for root here: rlimits above nofile 20000 are refused, so the
  # engine's default is set below that. runc, not crun (crun refuses this machine's hybrid cgroups).
  # nsenter, not `ip netns exec`: the latter remounts /sys, hiding the cgroup hierarchies dockerd needs.
  nsenter --net="/run/netns/$NETNS" dockerd \
    --config-file "$RUN/daemon.json" --host "unix://$SOCK" --pidfile "$PIDFILE" \
    --data-root "$ROOT/docker" --exec-root "$RUN/exec" \
    --bip "$BRIDGE_CIDR" --default-ulimit nofile=20000:20000 \
    --dns "$DNS_ADDR" \
    --exec-opt native.cgroupdriver=cgroupfs --cgroup-parent "/$CGROUP_PARENT" \
    --storage-driver overlay2 --log-driver json-file --ip6tables=false \
    >"$ROOT/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do
    if DOCKER_HOST="unix://$SOCK" /usr/bin/docker version >/dev/null 2>&1; then env_lines; return; fi
    sleep 0.5
  done
  say "dockerd did not answer in 30 s; its log: $ROOT/dockerd.log"; tail -20 "$ROOT/dockerd.log" >&2; exit 1
}

down() {
  set +e   # every step is attempted, whatever the one before did
  if running; then
    local pid; pid=$(cat "$PIDFILE")
    # Containers first, so that no container outlives its engine.
    timeout 20 /usr/bin/docker -H "unix://$SOCK" ps -q 2>/dev/null | xargs -r timeout 30 /usr/bin/docker -H "unix://$SOCK" kill >/dev/null 2>&1
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && { say "dockerd $pid did not stop; killing"; kill -9 "$pid" 2>/dev/null; }
  fi
  [ -f "$RUN/nxdns.pid" ] && kill "$(cat "$RUN/nxdns.pid")" 2>/dev/null
  # Whatever still runs in the namespace (a shim, a proxy, a test's helper) is stopped by PID before it goes.
  stop_netns "$NETNS"
  umount_under "$RUN" "$ROOT/docker"
  remove_cgroup "$CGROUP_PARENT"
  if [ -f "$ROOT/made-netns-mount" ] && [ -z "$(ls -A /run/netns 2>/dev/null)" ]; then
    umount /run/netns 2>/dev/null; rmdir /run/netns 2>/dev/null; rm -f "$ROOT/made-netns-mount"
  fi
  if [ -f "$ROOT/made-run-docker" ]; then rm -rf /run/docker; rm -f "$ROOT/made-run-docker"; fi
  # only if empty: the local Kubernetes' shims may use it too
  if [ -f "$ROOT/made-run-containerd" ]; then rmdir /run/containerd/s /run/containerd 2>/dev/null; rm -f "$ROOT/made-run-containerd"; fi
  rm -rf "$RUN"
  say "stopped"
  return 0
}

# engine.sh running: exit status 0 when the engine runs
[ "${1:-}" = running ] && { running; exit; }
main "$@"
