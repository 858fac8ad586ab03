#!/usr/bin/env bash
# A throwaway Redis server for the tests, on 127.0.0.1 only, no persistence.
#
#   tests/peers/redis.sh start DIR [PORT] [--owner-pid PID]
#   tests/peers/redis.sh stop DIR      stops the server whose PID is in DIR
#   tests/peers/redis.sh resume DIR    starts it again on the same port (empty)
#   tests/peers/redis.sh freeze DIR    SIGSTOP: a hung server that still accepts connections
#   tests/peers/redis.sh thaw DIR      SIGCONT
#
# `start` starts redis-server on a free port unless PORT is given, waits until it
# answers PING and prints KEY=VALUE lines:
#
#   REDIS_URL REDIS_PORT REDIS_PID
#
# With --owner-pid, a watcher stops the server and removes DIR when that process
# exits. Only PIDs this script started are signalled.
set -euo pipefail

# shellcheck source=tests/peers/lib.sh
. "$(dirname "$0")/lib.sh"

die() { echo "redis.sh: $*" >&2; exit 1; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( (RANDOM << 1 | RANDOM & 1) % 30000 + 20000 ))
    if ! port_in_use "$p"; then echo "$p"; return 0; fi
  done
  die "no free port found"
}

run_server() {
  local dir=$1 port=$2
  command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
    --daemonize no --protected-mode yes --logfile "$dir/redis.log" </dev/null >/dev/null 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/redis.pid"
  for _ in $(seq 1 200); do
    if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then
      echo "$pid"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || die "redis-server exited: $(tail -20 "$dir/redis.log" 2>/dev/null)"
    sleep 0.05
  done
  kill "$pid" 2>/dev/null || true
  die "redis-server did not answer in 10 s"
}

start() {
  local dir=${1:?usage: redis.sh start DIR [PORT] [--owner-pid PID]}
  shift
  local port="" owner=""
  while [ $# -gt 0 ]; do
    case $1 in
      --owner-pid) owner=${2:?}; shift 2 ;;
      *) port=$1; shift ;;
    esac
  done
  [ -n "$port" ] || port=$(free_port)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  echo "$port" >"$dir/port"
  local pid
  pid=$(run_server "$dir" "$port")
  if [ -n "$owner" ]; then
    nohup bash -c "while kill -0 $owner 2>/dev/null && [ -d '$dir' ]; do sleep 0.5; done
      p=\$(cat '$dir/redis.pid' 2>/dev/null) && kill -CONT \$p 2>/dev/null; kill \$p 2>/dev/null
      for _ in \$(seq 1 100); do kill -0 \$p 2>/dev/null || break; sleep 0.05; done
      rm -rf '$dir'" >/dev/null 2>&1 </dev/null &
  fi
  echo "REDIS_URL=redis://127.0.0.1:$port/"
  echo "REDIS_PORT=$port"
  echo "REDIS_PID=$pid"
}

stop() {
  local dir=${1:?usage: redis.sh stop DIR}
  if [ -s "$dir/redis.pid" ]; then kill -CONT "$(cat "$dir/redis.pid")" 2>/dev/null || true; fi
  stop_pid "$dir/redis.pid"
}

resume() {
  local dir=${1:?usage: redis.sh resume DIR}
  [ -s "$dir/port" ] || die "$dir holds no server started by this script"
  echo "REDIS_PID=$(run_server "$dir" "$(cat "$dir/port")")"
}

signal() {
  local dir=${2:?usage: redis.sh freeze|thaw DIR}
  [ -s "$dir/redis.pid" ] || die "$dir holds no running redis-server"
  kill "-$1" "$(cat "$dir/redis.pid")"
}

case ${1:-} in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  resume) shift; resume "$@" ;;
  freeze) shift; signal STOP "$@" ;;
  thaw) shift; signal CONT "$@" ;;
  *) die "usage: redis.sh start DIR [PORT] [--owner-pid PID] | stop DIR | resume DIR | freeze DIR | thaw DIR" ;;
esac
