#!/usr/bin/env bash
# A throwaway OpenID Connect provider (npm oidc-provider, see
# tests/peers/oidc-provider/server.mjs for its clients and users), on 127.0.0.1 only.
#
#   tests/peers/oidc-provider.sh install
#   tests/peers/oidc-provider.sh start DIR [PORT] [--owner-pid PID]
#   tests/peers/oidc-provider.sh stop DIR
#
# `install` runs `npm ci` in tests/peers/oidc-provider when node_modules is missing
# (needs node >= 18 and npm; fails loudly without them).
# `start` installs if needed, starts the server (a free port unless PORT is given),
# waits until it listens, writes DIR/oidc-provider.pid and prints KEY=VALUE lines:
#
#   OIDC_ISSUER OIDC_PORT OIDC_PID
#
# With --owner-pid the server exits when that process is gone.
# `stop` kills the process whose PID is in DIR/oidc-provider.pid, and nothing else.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)/oidc-provider"

# shellcheck source=tests/peers/lib.sh
. "$(dirname "$0")/lib.sh"

die() { echo "oidc-provider.sh: $*" >&2; exit 1; }

install() {
  command -v node >/dev/null || die "node is not installed (apt-get install nodejs npm)"
  command -v npm >/dev/null || die "npm is not installed (apt-get install npm)"
  if [ ! -d "$HERE/node_modules/oidc-provider" ]; then
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >&2) || die "npm ci failed"
  fi
}

start() {
  local dir=${1:?usage: start DIR [PORT] [--owner-pid PID]}; shift
  local port=0 owner=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --owner-pid) owner=(--owner-pid "$2"); shift 2 ;;
      *) port=$1; shift ;;
    esac
  done
  install
  mkdir -p "$dir"
  local log="$dir/oidc-provider.log"
  node "$HERE/server.mjs" --port "$port" "${owner[@]}" >"$log" 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/oidc-provider.pid"
  local line=""
  for _ in $(seq 1 600); do
    line=$(grep -m1 '^OIDC_PORT=' "$log" || true)
    [ -n "$line" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "the provider exited"; }
    sleep 0.05
  done
  [ -n "$line" ] || { kill "$pid" 2>/dev/null; cat "$log" >&2; die "the provider did not start in 30 s"; }
  local actual=${line#OIDC_PORT=}
  echo "OIDC_ISSUER=http://127.0.0.1:$actual"
  echo "OIDC_PORT=$actual"
  echo "OIDC_PID=$pid"
}

stop() {
  stop_pid "${1:?usage: stop DIR}/oidc-provider.pid"
}

case "${1:-}" in
  install) install ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) die "usage: $0 install | start DIR [PORT] [--owner-pid PID] | stop DIR" ;;
esac
