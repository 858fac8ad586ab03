#!/usr/bin/env bash
# Deeper fuzzing runs (never in CI: CI runs only the checked-in seeds and
# reproducers, see docs/security.md, "Fuzzing").
#
#   fuzz/run.sh TARGET SECONDS     one target for SECONDS
#   fuzz/run.sh all SECONDS        every target in turn, SECONDS each
#   fuzz/run.sh list               the targets
#
# One target at a time, in one process (no -jobs or -fork: one core). The
# checked-in corpus fuzz/corpus/TARGET/ is read, never written: new inputs go to
# fuzz/work/TARGET/ (ignored by git), findings to fuzz/artifacts/TARGET/. The last lines
# of each run (executions, coverage, corpus) are printed; the whole output is in
# fuzz/logs/TARGET.log.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain, or a
# stable one with FUZZ_TOOLCHAIN=stable (it sets RUSTC_BOOTSTRAP=1).
# Environment: FUZZ_TOOLCHAIN (default nightly), FUZZ_SANITIZER (default address;
# `none` runs about twice as fast), FUZZ_TIMEOUT (seconds per input, default 10),
# FUZZ_RSS_MB (default 2048), FUZZ_ARGS (more libFuzzer flags).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
cd "$HERE"

die() { echo "fuzz/run.sh: $*" >&2; exit 2; }

targets() { sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^authchain-fuzz$'; }

dict_for() {
  case "$1" in
    password_hash) echo dicts/password_hash.dict ;;
    saml_response|saml_encrypted|cas_response) echo dicts/xml.dict ;;
    id_token|signed_header|key_login) echo dicts/jwt.dict ;;
    config_toml) echo dicts/toml.dict ;;
    sync_*|search_entry) echo dicts/ber.dict ;;
    *) ;;
  esac
}

toolchain=${FUZZ_TOOLCHAIN:-nightly}
sanitizer=${FUZZ_SANITIZER:-address}
cargo_fuzz() {
  if [ "$toolchain" = stable ]; then
    RUSTC_BOOTSTRAP=1 cargo fuzz "$@"
  else
    cargo "+$toolchain" fuzz "$@"
  fi
}

run_one() {
  local target=$1 seconds=$2
  targets | grep -qx "$target" || die "no target $target (fuzz/run.sh list)"
  [ -d "corpus/$target" ] || die "no seed corpus corpus/$target"
  mkdir -p "work/$target" "artifacts/$target" logs
  local dict flags=()
  dict=$(dict_for "$target")
  [ -n "$dict" ] && flags+=("-dict=$dict")
  echo "==> $target for ${seconds}s"
  # xmlsec prints one line per failed signature check to stderr: drop them from
  # the log, keep libFuzzer's own lines.
  set +e
  cargo_fuzz run --sanitizer "$sanitizer" "$target" "work/$target" "corpus/$target" -- \
    -max_total_time="$seconds" \
    -timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb="${FUZZ_RSS_MB:-2048}" \
    -artifact_prefix="artifacts/$target/" -print_final_stats=1 \
    "${flags[@]}" ${FUZZ_ARGS:-} 2>&1 | grep -v '^func=xmlSec' >"logs/$target.log"
  local status=${PIPESTATUS[0]}
  set -e
  grep -E '^#[0-9]+ +(DONE|pulse|NEW|REDUCE)' "logs/$target.log" | tail -1 || true
  grep -E '^stat::' "logs/$target.log" || true
  if [ "$status" -ne 0 ]; then
    echo "!!! $target: libFuzzer exited with $status (finding in artifacts/$target/, log logs/$target.log)"
    return 1
  fi
}

case "${1:-}" in
  list) targets ;;
  all)
    seconds=${2:?usage: fuzz/run.sh all SECONDS}
    failed=0
    for t in $(targets); do run_one "$t" "$seconds" || failed=1; done
    exit $failed
    ;;
  ""|-h|--help) sed -n '2,20p' "$0" ;;
  *) run_one "$1" "${2:?usage: fuzz/run.sh TARGET SECONDS}" ;;
esac
