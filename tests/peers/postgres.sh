#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests, on 127.0.0.1 only (no Unix socket).
#
#   tests/peers/postgres.sh start DIR [PORT] [--owner-pid PID]
#   tests/peers/postgres.sh stop DIR      fast shutdown of the server whose PID is in DIR
#   tests/peers/postgres.sh kill DIR      SIGKILL, as a crash would
#   tests/peers/postgres.sh resume DIR    start again on the same port and data
#
# `start` runs initdb into DIR/data (as the `postgres` user when run as root:
# initdb and postgres refuse to run as root), starts postgres on a free port unless
# PORT is given, waits until it accepts logins and prints KEY=VALUE lines:
#
#   PG_URL (superuser authchain, password in the URL, database postgres)
#   PG_HOST PG_PORT PG_USER PG_PASSWORD PG_PID
#
# Durability is off (fsync, synchronous_commit): the data is thrown away.
# With --owner-pid, a watcher stops the server and removes DIR when that process
# exits. Only PIDs this script started are signalled.
set -euo pipefail

USER_NAME=authchain
PASSWORD=authchain-pg-password

# shellcheck source=tests/peers/lib.sh
. "$(dirname "$0")/lib.sh"

die() { echo "postgres.sh: $*" >&2; exit 1; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( (RANDOM << 1 | RANDOM & 1) % 30000 + 20000 ))
    if ! port_in_use "$p"; then echo "$p"; return 0; fi
  done
  die "no free port found"
}

bin_dir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$d" ] && [ -x "$d/postgres" ] || die "postgres not found under /usr/lib/postgresql (apt-get install postgresql)"
  echo "$d"
}

# AS_DB_USER: the command prefix that runs a program as the postgres user when we
# are root (setpriv execs it in place, so $! of a backgrounded call is the
# server's own PID).
AS_DB_USER=()
if [ "$(id -u)" = 0 ]; then
  AS_DB_USER=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi

check_db_user() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "no postgres user (apt-get install postgresql creates it)"
  fi
}

run_server() {
  local dir=$1 port=$2 bin
  bin=$(bin_dir)
  check_db_user
  "${AS_DB_USER[@]}" "$bin/postgres" -D "$dir/data" -c listen_addresses=127.0.0.1 -p "$port" \
    -c unix_socket_directories= -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
    -c max_connections=200 -c shared_buffers=32MB \
    >>"$dir/postgres.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$dir/postgres.pid"
  for _ in $(seq 1 300); do
    if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U "$USER_NAME" -d postgres; then
      echo "$pid"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || die "postgres exited: $(tail -20 "$dir/postgres.log")"
    sleep 0.05
  done
  kill -INT "$pid" 2>/dev/null || true
  die "postgres did not accept connections in 15 s: $(tail -20 "$dir/postgres.log")"
}

start() {
  local dir=${1:?usage: postgres.sh start DIR [PORT] [--owner-pid PID]}
  shift
  local port="" owner=""
  while [ $# -gt 0 ]; do
    case $1 in
      --owner-pid) owner=${2:?}; shift 2 ;;
      *) port=$1; shift ;;
    esac
  done
  local bin
  bin=$(bin_dir)
  [ -n "$port" ] || port=$(free_port)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  echo "$PASSWORD" >"$dir/pwfile"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir" "$dir/pwfile"; fi
  check_db_user
  "${AS_DB_USER[@]}" "$bin/initdb" -D "$dir/data" -U "$USER_NAME" --pwfile="$dir/pwfile" \
    --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 \
    || die "initdb failed: $(tail -20 "$dir/initdb.log")"
  echo "$port" >"$dir/port"
  local pid
  pid=$(run_server "$dir" "$port")
  if [ -n "$owner" ]; then
    # Fast shutdown once the owning process is gone, then DIR goes.
    nohup bash -c "while kill -0 $owner 2>/dev/null && [ -d '$dir' ]; do sleep 0.5; done
      p=\$(cat '$dir/postgres.pid' 2>/dev/null) && kill -CONT \$p 2>/dev/null; kill -INT \$p 2>/dev/null
      for _ in \$(seq 1 100); do kill -0 \$p 2>/dev/null || break; sleep 0.05; done
      rm -rf '$dir'" >/dev/null 2>&1 </dev/null &
  fi
  echo "PG_URL=postgres://$USER_NAME:$PASSWORD@127.0.0.1:$port/postgres"
  echo "PG_HOST=127.0.0.1"
  echo "PG_PORT=$port"
  echo "PG_USER=$USER_NAME"
  echo "PG_PASSWORD=$PASSWORD"
  echo "PG_PID=$pid"
}

# stop DIR: fast shutdown (SIGINT closes open connections, where SIGTERM would
# wait for every pooled client to leave), SIGKILL after 10 s.
stop() {
  local file=${1:?usage: postgres.sh stop DIR}/postgres.pid pid
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  rm -f "$file"
  kill -CONT "$pid" 2>/dev/null || true
  kill -INT "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
  kill -9 "$pid" 2>/dev/null || true
}

kill_hard() {
  local dir=${1:?usage: postgres.sh kill DIR} pid
  [ -s "$dir/postgres.pid" ] || return 0
  pid=$(cat "$dir/postgres.pid")
  rm -f "$dir/postgres.pid"
  kill -9 "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  # The backends of a killed postmaster exit on their own; wait for the port.
  for _ in $(seq 1 200); do
    port_in_use "$(cat "$dir/port")" || return 0
    sleep 0.05
  done
}

resume() {
  local dir=${1:?usage: postgres.sh resume DIR}
  [ -s "$dir/port" ] || die "$dir holds no server started by this script"
  echo "PG_PID=$(run_server "$dir" "$(cat "$dir/port")")"
}

case ${1:-} in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  kill) shift; kill_hard "$@" ;;
  resume) shift; resume "$@" ;;
  *) die "usage: postgres.sh start DIR [PORT] [--owner-pid PID] | stop DIR | kill DIR | resume DIR" ;;
esac
