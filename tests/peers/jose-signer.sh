#!/usr/bin/env bash
# tests/signed_header.rs's independent JOSE implementation: jwcrypto (PyPI) in a venv
# under target/, built once from the pinned requirements (as saml-idp.sh builds its own).
#   jose-signer.sh install        build the venv (idempotent; flock-serialised)
#   jose-signer.sh run ARGS...    run sign.py (see its docstring)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)/jose-signer"
ROOT="$(cd "$HERE/../../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
VENV="$TARGET/jose-signer-venv"
die() { echo "jose-signer.sh: $*" >&2; exit 1; }
install() {
  command -v python3 >/dev/null || die "python3 is not installed (apt-get install python3 python3-venv)"
  mkdir -p "$TARGET"
  (
    flock 9
    if ! cmp -s "$HERE/requirements.txt" "$VENV/.authchain-requirements" 2>/dev/null; then
      rm -rf "$VENV"
      python3 -m venv "$VENV" >&2 || die "python3 -m venv failed"
      "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-input \
        -r "$HERE/requirements.txt" >&2 || die "pip install failed"
      cp "$HERE/requirements.txt" "$VENV/.authchain-requirements"
    fi
  ) 9>"$TARGET/jose-signer-venv.lock"
}
case "${1:-}" in
  install) install ;;
  run) shift; install; exec "$VENV/bin/python" "$HERE/sign.py" "$@" ;;
  *) die "usage: jose-signer.sh install | run ARGS..." ;;
esac
