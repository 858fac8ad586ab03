#!/usr/bin/env bash
# A throwaway CAS server (PyPI django-mama-cas on Django, the project in
# tests/peers/cas-server/), on 127.0.0.1 only.
#
#   tests/peers/cas-server.sh install
#   tests/peers/cas-server.sh start DIR [PORT] [--owner-pid PID]
#   tests/peers/cas-server.sh stop DIR
#
# `install` creates a virtualenv once under the target directory
# ($CARGO_TARGET_DIR or target/, in peers/cas-server-venv) from the pinned
# requirements.txt (needs python3 with venv and pip, and PyPI). A lock keeps
# parallel test binaries from installing at the same time.
# `start` installs if needed, creates the database in DIR (migrate, the users
# alice, bob, carol of casserver/management/commands/seed_users.py), starts
# `runserver --noreload` on a free port (unless PORT is given), waits until it
# accepts connections, writes DIR/cas-server.pid and prints KEY=VALUE lines:
#
#   CAS_URL CAS_PORT CAS_PID
#
# CAS_URL is the server URL (login at $CAS_URL/login). With --owner-pid the
# server exits when that process is gone. `stop` kills the process whose PID is
# in DIR/cas-server.pid, and nothing else, and waits until it has exited.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)/cas-server"
ROOT="$(cd "$HERE/../../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
VENV="$TARGET/peers/cas-server-venv"

# shellcheck source=tests/peers/lib.sh
. "$(dirname "$0")/lib.sh"

die() { echo "cas-server.sh: $*" >&2; exit 1; }

install() {
  command -v python3 >/dev/null || die "python3 is not installed (apt-get install python3 python3-venv)"
  command -v flock >/dev/null || die "flock is not installed (apt-get install util-linux)"
  mkdir -p "$TARGET/peers"
  local stamp
  stamp="$VENV/.installed-$(sha256sum "$HERE/requirements.txt" | cut -c1-16)"
  [ -f "$stamp" ] && return 0
  (
    flock 9
    [ -f "$stamp" ] && exit 0
    rm -rf "$VENV"
    python3 -m venv "$VENV" >&2 || die "python3 -m venv failed (apt-get install python3-venv)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-input \
      -r "$HERE/requirements.txt" >&2 || die "pip install failed"
    touch "$stamp"
  ) 9>"$TARGET/peers/cas-server-venv.lock"
}

free_port() {
  "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
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
  dir="$(cd "$dir" && pwd)"
  export CAS_DATA_DIR="$dir" PYTHONDONTWRITEBYTECODE=1
  local manage=("$VENV/bin/python" "$HERE/manage.py")
  "${manage[@]}" migrate --no-input -v 0 >"$dir/migrate.log" 2>&1 || { cat "$dir/migrate.log" >&2; die "migrate failed"; }
  "${manage[@]}" seed_users >>"$dir/migrate.log" 2>&1 || { cat "$dir/migrate.log" >&2; die "seed_users failed"; }
  # A port picked free can be taken before the server binds it: try a few.
  local fixed=$port pid="" log="$dir/cas-server.log"
  for _ in 1 2 3; do
    [ "$fixed" = 0 ] && port=$(free_port)
    "${manage[@]}" serve "$port" "${owner[@]}" >"$log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/cas-server.pid"
    for _ in $(seq 1 200); do
      kill -0 "$pid" 2>/dev/null || break
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "CAS_URL=http://127.0.0.1:$port/cas"
        echo "CAS_PORT=$port"
        echo "CAS_PID=$pid"
        return 0
      fi
      sleep 0.05
    done
    kill "$pid" 2>/dev/null || true
    [ "$fixed" = 0 ] || break
  done
  rm -f "$dir/cas-server.pid"
  cat "$log" >&2
  die "the CAS server did not start"
}

stop() {
  stop_pid "${1:?usage: stop DIR}/cas-server.pid"
}

case "${1:-}" in
  install) install ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) die "usage: $0 install | start DIR [PORT] [--owner-pid PID] | stop DIR" ;;
esac
