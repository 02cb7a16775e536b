# What engine.sh and kube/cluster.sh share to leave the machine as they found it; sourced (they define say).

# stop_netns NETNS: every process in the network namespace stopped by PID (TERM, then KILL), then the
# namespace deleted.
stop_netns() {
  ip netns list | grep -qw "$1" || return 0
  local pids; pids=$(ip netns pids "$1" 2>/dev/null)
  if [ -n "$pids" ]; then
    kill $pids 2>/dev/null; sleep 2
    pids=$(ip netns pids "$1" 2>/dev/null)
    [ -n "$pids" ] && { kill -9 $pids 2>/dev/null; sleep 0.5; }
  fi
  ip netns delete "$1"
}

# umount_under DIR…: every mount at or under the directories, deepest first.
umount_under() {
  local d
  for d in "$@"; do grep " $d" /proc/mounts; done | awk '{print $2}' | sort -ru | xargs -r -n1 umount -l
}

# remove_cgroup NAME: the cgroup NAME and everything under it, in every hierarchy.
remove_cgroup() {
  local d
  for d in /sys/fs/cgroup/*/"$1" /sys/fs/cgroup/"$1"; do
    [ -d "$d" ] || continue
    for _ in $(seq 1 10); do find "$d" -depth -type d -exec rmdir {} + 2>/dev/null; [ -d "$d" ] || break; sleep 0.5; done
    [ -d "$d" ] && say "could not remove the cgroup $d"
  done
  return 0
}

# machine_snapshot: what the engine and the cluster could leave changed on the machine (mounts, the
# directories they share, links, iptables rules, forwarding sysctls, writeback cgroups), to compare.
machine_snapshot() {
  sort /proc/mounts; ls -d /run/netns /run/docker /run/containerd /etc/docker/key.json 2>/dev/null
  ip -o link | awk '{print $2}'
  iptables-save 2>/dev/null | grep -v -e '^#' -e '^:' || true
  cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || true
  ls /sys/fs/cgroup/*/ 2>/dev/null | grep -c writeback || true
}

# serve_modules [CMD…]: this machine's Go module cache served as a Go module proxy at MODULE_PROXY, on the
# engine's bridge, for the image builds (CMD, e.g. nsenter --net=…, puts it in the engine's namespace);
# its PID in module_proxy_pid.
MODULE_PROXY=http://10.213.0.1:8790
serve_modules() {
  "$@" python3 -m http.server 8790 --bind 10.213.0.1 --directory "$(go env GOMODCACHE)/cache/download" >/dev/null 2>&1 &
  module_proxy_pid=$!
}

# workflow_count ADDRESS QUERY [CMD…]: how many workflows match QUERY on the Temporal frontend at ADDRESS,
# asked with the pinned CLI (CMD, e.g. nsenter --net=…, where the address is reachable); a transient RPC
# error is retried.
workflow_count() {
  local address=$1 query=$2 n; shift 2
  for _ in 1 2 3 4 5; do
    n=$("$@" bin/temporal --address "$address" workflow count --query "$query" 2>/dev/null | sed -n 's/^Total: *//p') &&
      [ -n "$n" ] && { echo "$n"; return 0; }
    sleep 1
  done
  return 1
}

# main "$@": the command line of engine.sh and cluster.sh (their up, down and env_lines).
main() {
  case "${1:-}" in
    up) up ;;
    down) down ;;
    env) env_lines ;;
    *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
  esac
}

# need_packages COMMAND:PACKAGE…: installs from Debian's packages the ones whose command is missing. No
# service may start at install time (a containerd or dockerd outside the namespaces would change the
# machine), so a policy-rc.d refuses them while apt runs, unless the machine has one already.
need_packages() {
  local missing=() c
  for c in "$@"; do command -v "${c%%:*}" >/dev/null || [ -e "${c%%:*}" ] || missing+=("${c#*:}"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]} from Debian's packages"
  local made_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  local rc=$?
  [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
  return $rc
}
