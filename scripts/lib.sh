# Shared helpers of the scripts; sourced, not run.

# port_open HOST PORT: true if something listens there.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# amqp_host_port: host and port of AMQP_URL (default localhost:5672).
amqp_host_port() {
  local url="${AMQP_URL:-amqp://guest:guest@localhost:5672/}"
  local rest="${url#*://}"; rest="${rest#*@}"; rest="${rest%%/*}"
  local host="${rest%%:*}" port="${rest##*:}"
  [ "$port" = "$rest" ] && port=5672
  echo "$host $port"
}

# wait_for HOST PORT SECONDS WHAT
wait_for() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    port_open "$1" "$2" && return 0
    sleep 0.1
  done
  echo "$4 did not come up on $1:$2 within $3 s" >&2
  return 1
}
