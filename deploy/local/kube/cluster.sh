#!/usr/bin/env bash
# A single-node Kubernetes v1.32.13 of writeback's own, for make deploy-up / deploy-down / test-deploy: etcd,
# the control plane, containerd (Debian's, with runc) and the kubelet, all inside a network namespace this
# script creates, so that the node's address, the pods' bridge, the Services' iptables rules and every port
# stay in that namespace. Programs from bin/kube (tools.sh); data under ROOT (kept: the image cache).
#   cluster.sh up     start it (idempotent); prints KUBECONFIG=… and NETNS=…
#   cluster.sh down   stop every process by PID, unmount, remove the namespace, the cgroups and whatever
#                     else it made outside its own directories
#   cluster.sh env    the variables a client needs
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
BIN=$REPO/bin/kube
NETNS=${WRITEBACK_KUBE_NETNS:-writeback-kube}
ROOT=${WRITEBACK_KUBE_ROOT:-/var/tmp/writeback-kube}
RUN=/run/writeback-kube
PKI=$ROOT/pki
KUBECONFIG_PATH=$ROOT/admin.kubeconfig
CGROUP=writeback-kube          # the kubelet's cgroup root, in every hierarchy
NODE=writeback-node
NODE_IP=10.214.0.2             # on a veth inside the namespace (the kubelet refuses a loopback node IP)
POD_CIDR=10.215.0.0/24
SERVICE_CIDR=10.216.0.0/24
API_SERVICE_IP=10.216.0.1
DNS_SERVICE_IP=10.216.0.10
# Paths outside ROOT and RUN that these programs create on their own, removed by down if up made them.
MADE_BY_THEM=(/run/netns /var/log/containers /var/log/pods /var/lib/cni /run/containerd /etc/cni /opt/containerd
  /var/lib/kubelet /etc/kubernetes)

say() { echo "cluster: $*" >&2; }
. "$HERE/../lib.sh"
in_ns() { nsenter --net="/run/netns/$NETNS" "$@"; }
kc() { in_ns "$BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

env_lines() {
  echo "KUBECONFIG=$KUBECONFIG_PATH"
  echo "NETNS=$NETNS"
}

running() { [ -f "$RUN/kubelet.pid" ] && kill -0 "$(cat "$RUN/kubelet.pid")" 2>/dev/null; }

# start NAME CMD…: run a program in the namespace, its PID and log kept
start() {
  local name=$1; shift
  in_ns "$@" >"$ROOT/log/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
}

# wait_for WHAT SECONDS CMD…
wait_for() {
  local what=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 2))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  say "$what did not come up in $secs s"; return 1
}

pki() {
  [ -f "$PKI/admin.crt" ] && return
  mkdir -p "$PKI"
  local o="openssl"
  $o req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=writeback-local-ca" -keyout "$PKI/ca.key" -out "$PKI/ca.crt" 2>/dev/null
  # cert NAME SUBJECT [SAN]
  cert() {
    $o req -newkey rsa:2048 -nodes -subj "$2" -keyout "$PKI/$1.key" -out "$PKI/$1.csr" 2>/dev/null
    local ext=/dev/null
    if [ -n "${3:-}" ]; then ext=$PKI/$1.ext; printf 'subjectAltName=%s\n' "$3" >"$ext"; fi
    $o x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial -days 3650 \
      -extfile "$ext" -out "$PKI/$1.crt" 2>/dev/null
    rm -f "$PKI/$1.csr"
  }
  cert apiserver "/CN=kube-apiserver" \
    "IP:$NODE_IP,IP:$API_SERVICE_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  # One identity for the control plane, the node and the operator: a local cluster, not a multi-tenant one.
  cert admin "/O=system:masters/CN=writeback-local-admin"
  $o genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  $o rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  cat >"$KUBECONFIG_PATH" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: writeback-local
  cluster: {server: "https://$NODE_IP:6443", certificate-authority: "$PKI/ca.crt"}
users:
- name: admin
  user: {client-certificate: "$PKI/admin.crt", client-key: "$PKI/admin.key"}
contexts:
- name: writeback-local
  context: {cluster: writeback-local, user: admin, namespace: default}
current-context: writeback-local
EOF
}

network() {
  ip netns list | grep -qw "$NETNS" || ip netns add "$NETNS"
  in_ns ip link set lo up
  if ! in_ns ip link show wbk-node >/dev/null 2>&1; then
    # Both ends in the namespace: nothing of the cluster is reachable from, or reaches, outside it.
    in_ns ip link add wbk-node type veth peer name wbk-peer
  fi
  in_ns ip addr replace "$NODE_IP/24" dev wbk-node
  in_ns ip link set wbk-node up
  in_ns ip link set wbk-peer up
  # A default route (to an address nobody holds): the kubelet and kube-proxy want one.
  in_ns ip route replace default via 10.214.0.254 dev wbk-node
  in_ns sysctl -qw net.ipv4.ip_forward=1
}

containerd_up() {
  mkdir -p "$ROOT/containerd" "$RUN/containerd" "$ROOT/cni/net.d" "$RUN/cni"
  cat >"$ROOT/cni/net.d/10-writeback.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "writeback-pods", "plugins": [
  {"type": "bridge", "bridge": "wbk-cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": "$RUN/cni/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
  cat >"$RUN/containerd.toml" <<EOF
version = 2
root = "$ROOT/containerd"
state = "$RUN/containerd"
# Plugins that would write outside root and state, or need what this machine lacks.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$RUN/containerd.sock"
[ttrpc]
  address = "$RUN/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "writeback-local/pause:1"
  # root here lacks CAP_SYS_RESOURCE: a negative oom_score_adj is refused
  restrict_oom_score_adj = true
  enable_cdi = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        Root = "$RUN/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$ROOT/cni/net.d"
EOF
  start containerd containerd --config "$RUN/containerd.toml"
  wait_for containerd 30 ctr --address "$RUN/containerd.sock" version
}

control_plane() {
  mkdir -p "$ROOT/etcd"
  start etcd "$BIN/etcd" --name writeback-local --data-dir "$ROOT/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster writeback-local=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381
  wait_for etcd 30 in_ns "$BIN/etcdctl" --endpoints http://127.0.0.1:2379 endpoint health
  start kube-apiserver "$BIN/kube-apiserver" --etcd-servers http://127.0.0.1:2379 \
    --advertise-address "$NODE_IP" --bind-address 0.0.0.0 --secure-port 6443 \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" --client-ca-file "$PKI/ca.crt" \
    --kubelet-client-certificate "$PKI/admin.crt" --kubelet-client-key "$PKI/admin.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --kubelet-preferred-address-types InternalIP \
    --authorization-mode RBAC --allow-privileged=true --profiling=false
  wait_for kube-apiserver 60 kc get --raw /readyz
  start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig "$KUBECONFIG_PATH" \
    --authentication-kubeconfig "$KUBECONFIG_PATH" --authorization-kubeconfig "$KUBECONFIG_PATH" \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --use-service-account-credentials --leader-elect=false --bind-address 127.0.0.1 --profiling=false
  start kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$KUBECONFIG_PATH" \
    --authentication-kubeconfig "$KUBECONFIG_PATH" --authorization-kubeconfig "$KUBECONFIG_PATH" \
    --leader-elect=false --bind-address 127.0.0.1 --profiling=false
}

node() {
  for d in /sys/fs/cgroup/*/; do
    [ -d "$d$CGROUP" ] || mkdir "$d$CGROUP"
  done
  mkdir -p "$ROOT/kubelet" "$ROOT/pod-logs"
  printf 'search cluster.local\n' >"$ROOT/resolv.conf"   # no nameserver outside: pods resolve through CoreDNS only
  cat >"$ROOT/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication: {x509: {clientCAFile: "$PKI/ca.crt"}, webhook: {enabled: false}, anonymous: {enabled: false}}
authorization: {mode: AlwaysAllow}
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
# this machine: cgroup v1 hybrid without systemd, swap on, root without CAP_SYS_RESOURCE
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP
failSwapOn: false
failCgroupV1: false
containerRuntimeEndpoint: unix://$RUN/containerd.sock
clusterDNS: [$DNS_SERVICE_IP]
clusterDomain: cluster.local
resolvConf: $ROOT/resolv.conf
podLogsDir: $ROOT/pod-logs
# images are built here and never pulled: keep them, and do not evict for a full disk of someone else's
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
serializeImagePulls: false
EOF
  start kubelet "$BIN/kubelet" --config "$ROOT/kubelet.yaml" --kubeconfig "$KUBECONFIG_PATH" \
    --root-dir "$ROOT/kubelet" --cert-dir "$PKI/kubelet" --node-ip "$NODE_IP" --hostname-override "$NODE"
  # Pods on one bridge reach each other through Services only if the bridge's traffic passes iptables, which
  # needs br_netfilter; --masquerade-all makes Service traffic return through the node instead.
  start kube-proxy "$BIN/kube-proxy" --kubeconfig "$KUBECONFIG_PATH" --hostname-override "$NODE" \
    --cluster-cidr "$POD_CIDR" --proxy-mode iptables --masquerade-all \
    --conntrack-max-per-core 0 --conntrack-tcp-timeout-established 0 --conntrack-tcp-timeout-close-wait 0 \
    --metrics-bind-address 127.0.0.1:10249 --healthz-bind-address 127.0.0.1:10256
  wait_for "the node" 60 kc wait --for=condition=Ready "node/$NODE" --timeout 1s
}

up() {
  for c in containerd runc /usr/lib/cni/bridge openssl; do
    command -v "$c" >/dev/null || [ -x "$c" ] || { say "$c missing: apt-get install containerd runc containernetworking-plugins iptables"; exit 1; }
  done
  [ -x "$BIN/kubelet" ] || { say "bin/kube is empty: make kube-tools"; exit 1; }
  if running; then env_lines; return; fi
  mkdir -p "$ROOT/log" "$RUN"
  for p in "${MADE_BY_THEM[@]}"; do [ -e "$p" ] || echo "$p" >>"$ROOT/made"; done
  # The pods' network namespaces are mounted as /run/netns/cni-…: those there before are not ours.
  ls /run/netns 2>/dev/null >"$ROOT/netns-before" || true
  pki
  network
  containerd_up
  control_plane
  node
  env_lines
}

# kill_containers: SIGKILL to every process in a cgroup under the kubelet's root, until none is left.
# A container that runc was creating when containerd went can sit in a frozen freezer cgroup, where
# SIGKILL waits until it is thawed (a CI run kept three pause processes and a `runc init`).
kill_containers() {
  local pids f
  for _ in 1 2 3 4 5; do
    for f in $(find /sys/fs/cgroup/freezer/"$CGROUP" -name freezer.state 2>/dev/null); do
      grep -q THAWED "$f" || echo THAWED >"$f" 2>/dev/null
    done
    pids=$(cat /sys/fs/cgroup/*/"$CGROUP"/cgroup.procs /sys/fs/cgroup/*/"$CGROUP"/*/cgroup.procs \
      $(find /sys/fs/cgroup/*/"$CGROUP" -mindepth 2 -name cgroup.procs 2>/dev/null) 2>/dev/null | sort -u)
    [ -z "$pids" ] && return 0
    kill -9 $pids 2>/dev/null; sleep 1
  done
  say "processes left in the cgroup $CGROUP: $pids"
}

down() {
  set +e   # every step is attempted, whatever the one before did
  # The pods first (their shims are children of nobody we track), then the programs, newest first.
  if [ -S "$RUN/containerd.sock" ]; then
    for id in $(ctr --address "$RUN/containerd.sock" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$RUN/containerd.sock" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1
    done
  fi
  for name in kube-proxy kubelet kube-scheduler kube-controller-manager kube-apiserver etcd containerd; do
    [ -f "$RUN/$name.pid" ] || continue
    local pid; pid=$(cat "$RUN/$name.pid")
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null
  done
  # The containers: each is in a cgroup under the kubelet's root (and a network namespace of its pod).
  kill_containers
  # Whatever still runs in the namespace (shims, the topology operator) is stopped by PID before it goes.
  stop_netns "$NETNS"
  kill_containers   # again: a shim stopped last may have left one behind
  for ns in $(ls /run/netns 2>/dev/null | grep '^cni-'); do
    grep -qx "$ns" "$ROOT/netns-before" 2>/dev/null && continue
    umount "/run/netns/$ns" 2>/dev/null; rm -f "/run/netns/$ns"
  done
  rm -f "$ROOT/netns-before"
  umount_under "$RUN" "$ROOT"
  remove_cgroup "$CGROUP"
  if [ -f "$ROOT/made" ]; then
    while read -r p; do
      if [ "$p" = /run/netns ]; then
        [ -z "$(ls -A /run/netns 2>/dev/null)" ] && { umount /run/netns 2>/dev/null; rmdir /run/netns 2>/dev/null; }
      elif [ "$p" = /run/containerd ]; then
        # A shim killed while it started (the kubelet restarting a container as the cluster stops) can
        # leave its socket file: remove those no process listens on, then the folders if empty (the
        # compose engine's shims may use them too).
        for sock in /run/containerd/s/*; do
          [ -S "$sock" ] && ! ss -xl 2>/dev/null | grep -qF "$sock" && rm -f "$sock"
        done
        rmdir /run/containerd/s /run/containerd 2>/dev/null
      else
        rm -rf "$p"
      fi
    done <"$ROOT/made"
    rm -f "$ROOT/made"
  fi
  # Only the image cache is kept: the cluster's state starts afresh at the next up.
  rm -rf "$RUN" "$ROOT/etcd" "$ROOT/kubelet" "$ROOT/pod-logs" "$ROOT/cni" "$PKI" "$KUBECONFIG_PATH"
  say "stopped"
  return 0
}

main "$@"
