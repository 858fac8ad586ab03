#!/usr/bin/env bash
# A throwaway SAML 2.0 identity provider (PyPI pysaml2 with Debian xmlsec1, see
# tests/peers/saml-idp/server.py for its users and endpoints), on 127.0.0.1 only.
#
#   tests/peers/saml-idp.sh install
#   tests/peers/saml-idp.sh start DIR [PORT] [--owner-pid PID]
#   tests/peers/saml-idp.sh stop DIR
#
# `install` creates a Python venv with the pinned tests/peers/saml-idp/requirements.txt
# under the target directory ($CARGO_TARGET_DIR, default ./target), once: a lock
# keeps parallel test binaries from racing (needs python3 with venv, and xmlsec1).
# `start` installs if needed, makes the IdP's signing key pair and a second
# ("rogue") key pair in DIR, starts the server (a free port unless PORT is given),
# waits until it listens, writes DIR/saml-idp.pid and prints KEY=VALUE lines:
#
#   SAML_IDP_URL SAML_IDP_PORT SAML_IDP_PID SAML_IDP_METADATA SAML_IDP_CERT SAML_IDP_ROGUE_CERT
#
# With --owner-pid the server exits when that process is gone.
# `stop` kills the process whose PID is in DIR/saml-idp.pid, and nothing else.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)/saml-idp"
ROOT="$(cd "$HERE/../../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
VENV="$TARGET/saml-idp-venv"

die() { echo "saml-idp.sh: $*" >&2; exit 1; }

install() {
  command -v python3 >/dev/null || die "python3 is not installed (apt-get install python3 python3-venv)"
  command -v xmlsec1 >/dev/null || die "xmlsec1 is not installed (apt-get install xmlsec1)"
  command -v flock >/dev/null || die "flock is not installed (util-linux)"
  mkdir -p "$TARGET"
  (
    flock 9
    # The stamp holds the requirements it was built from: a changed pin rebuilds.
    if ! cmp -s "$HERE/requirements.txt" "$VENV/.authchain-requirements" 2>/dev/null; then
      rm -rf "$VENV"
      python3 -m venv "$VENV" >&2 || die "python3 -m venv failed (apt-get install python3-venv)"
      "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-input \
        -r "$HERE/requirements.txt" >&2 || die "pip install failed"
      cp "$HERE/requirements.txt" "$VENV/.authchain-requirements"
    fi
  ) 9>"$TARGET/saml-idp-venv.lock"
}

keypair() {
  local dir=$1 name=$2
  [ -f "$dir/$name.crt" ] && return 0
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -sha256 \
    -subj "/CN=authchain test $name" -keyout "$dir/$name.key" -out "$dir/$name.crt" 2>/dev/null \
    || die "openssl could not make the $name key pair"
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
  keypair "$dir" idp
  keypair "$dir" rogue
  local log="$dir/saml-idp.log"
  "$VENV/bin/python" "$HERE/server.py" --dir "$dir" --port "$port" --xmlsec "$(command -v xmlsec1)" \
    "${owner[@]}" >"$log" 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/saml-idp.pid"
  local line=""
  for _ in $(seq 1 400); do
    line=$(grep -m1 '^SAML_IDP_PORT=' "$log" || true)
    [ -n "$line" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "the IdP exited"; }
    sleep 0.05
  done
  [ -n "$line" ] || { kill "$pid" 2>/dev/null; cat "$log" >&2; die "the IdP did not start in 20 s"; }
  local actual=${line#SAML_IDP_PORT=}
  echo "SAML_IDP_URL=http://127.0.0.1:$actual"
  echo "SAML_IDP_PORT=$actual"
  echo "SAML_IDP_PID=$pid"
  echo "SAML_IDP_METADATA=$dir/idp-metadata.xml"
  echo "SAML_IDP_CERT=$dir/idp.crt"
  echo "SAML_IDP_ROGUE_CERT=$dir/rogue.crt"
}

stop() {
  local dir=${1:?usage: stop DIR}
  [ -f "$dir/saml-idp.pid" ] || return 0
  local pid
  pid=$(cat "$dir/saml-idp.pid")
  kill "$pid" 2>/dev/null || true
  rm -f "$dir/saml-idp.pid"
}

case "${1:-}" in
  install) install ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) die "usage: $0 install | start DIR [PORT] [--owner-pid PID] | stop DIR" ;;
esac
