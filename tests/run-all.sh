#!/usr/bin/env bash
# Every test of authchain, on a fresh Debian machine: installs what the tests
# need (Debian packages listed in tests/peers/apt-packages.txt, Rust components),
# then formatting, lints, the whole test suite and the documentation.
# The real servers (slapd, ...) are started by the tests themselves through the
# scripts in tests/peers/, on 127.0.0.1 only, and stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

mapfile -t packages < <(grep -vE '^\s*(#|$)' tests/peers/apt-packages.txt)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  # Packaged daemons must not start system-wide copies on every address.
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  [ "$created_policy" = 1 ] && as_root rm -f /usr/sbin/policy-rc.d
fi

for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy (all features, all targets, the workspace: authchain and xmlsec-errors/)"
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "==> cargo check (default features)"
cargo check --all-targets
echo "==> cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features
echo "==> cargo test (all features)"
cargo test --all-features
# --all-features checks SAML signatures in Rust (saml-rust-dsig): the xmlsec
# backend's must-reject tests once more on their own.
echo "==> cargo test --features saml --test saml (xmlsec backend)"
cargo test --features saml --test saml
echo "==> cargo test --features saml --test saml_xmlsec_errors (xmlsec backend: its reports never on stderr)"
cargo test --features saml --test saml_xmlsec_errors
echo "==> cargo test -p authchain-xmlsec-errors (the callback's string handling)"
cargo test -p authchain-xmlsec-errors
