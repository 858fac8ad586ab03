#!/usr/bin/env bash
# The soak (never in CI): steady load through [header, LDAP, local, oauth2] with the
# SQLite store against the real slapd, plus abandoned redirect starts and failed
# logins from many addresses, printing the process's resident memory every 30 s.
# The test fails if memory still grows in the last third of the run.
#
#   tests/soak.sh [SECONDS]      default 600
#
# Needs what `tests/run-all.sh` installs (slapd). Uses the release profile so the
# load is close to production.
set -euo pipefail
cd "$(dirname "$0")/.."
AUTHCHAIN_SOAK_SECS=${1:-600} cargo test --release --all-features --test load \
  soak_memory_reaches_a_plateau -- --ignored --nocapture
