# Shared helpers of the scripts; sourced, not run.

# The repository's Go modules: the production module first, then the harness modules nested in it.
MODULES=". bench deploy integration"

# port_open HOST PORT: true if something listens there.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait_file FILE PID SECONDS WHAT: until FILE exists; fails if the process PID ends first.
wait_file() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    [ -e "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || { echo "$4 ended before it was ready" >&2; return 1; }
    sleep 0.1
  done
  echo "$4 was not ready within $3 s" >&2
  return 1
}
