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

# One build from scratch: no incremental caches, and debug info as line tables
# only (backtraces keep file and line). About 40 test binaries each link the
# whole dependency tree; with full debug info target/ grew to 15 GB.
export CARGO_INCREMENTAL=0
export CARGO_PROFILE_DEV_DEBUG=line-tables-only
# What target/ holds and what the disk has left after each step, so a run that
# runs out of space shows which step took it.
disk() { echo "    target/ $(du -sh target 2>/dev/null | cut -f1), $(df -h . | awk 'NR == 2 {print $4}') free"; }

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy (all features, all targets, the workspace: authchain and xmlsec-errors/)"
cargo clippy --workspace --all-targets --all-features -- -D warnings
disk
echo "==> cargo check (default features)"
cargo check --all-targets
disk
echo "==> cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features
disk
echo "==> cargo test (all features)"
cargo test --all-features
disk
# --all-features checks SAML signatures in Rust (saml-rust-dsig): the xmlsec
# backend's must-reject tests once more on their own, with every other feature
# on so that the dependencies built for the run above serve again.
xmlsec_features=$(python3 -c 'import tomllib; f = tomllib.load(open("Cargo.toml", "rb"))["features"]; print(",".join(k for k in f if k not in ("default", "saml-rust-dsig")))')
echo "==> cargo test --features $xmlsec_features --test saml (xmlsec backend)"
cargo test --features "$xmlsec_features" --test saml
echo "==> cargo test --features $xmlsec_features --test saml_xmlsec_errors (xmlsec backend: its reports never on stderr)"
cargo test --features "$xmlsec_features" --test saml_xmlsec_errors
disk
echo "==> cargo test -p authchain-xmlsec-errors (the callback's string handling)"
cargo test -p authchain-xmlsec-errors
