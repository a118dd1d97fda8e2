#!/usr/bin/env bash
# demo.sh: on a fresh Debian 12 machine (as root), install what kith needs,
# build it, and run `kith demo`, which starts a throwaway Prosody on
# 127.0.0.1 (tests/lab/lab.sh) and shows roster management and presence
# subscriptions against it. Arguments go to `kith demo`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${KITH_BUILD_DIR:-build}
[[ $BUILD == /* ]] || BUILD=$ROOT/$BUILD
KITH_BUILD_DIR=$BUILD "$ROOT/scripts/setup.sh"
if [[ ! -x $BUILD/kith ]]; then
  echo "demo.sh: $BUILD/kith was not built" >&2
  exit 1
fi
exec "$BUILD/kith" demo "$@"
