#!/usr/bin/env bash
# test.sh: set up a fresh Debian 12 machine and run kith's whole suite.
#
#   scripts/test.sh
#
#   1. scripts/setup.sh into build/ with -DKITH_WERROR=ON; ctest -j2
#   2. scripts/setup.sh into build-asan/ with -DKITH_SANITIZE=ON
#      -DKITH_WERROR=ON (AddressSanitizer + UBSan); ctest -j2
#   3. fuzz/run.sh SECONDS, if it exists
#
# The integration tests start their own Prosody on loopback (ctest fixture
# `lab`) and take turns through a resource lock, so -j2 is safe.
# Ends with the line "N passed, N failed": the tests of both ctest runs,
# plus one entry per build and per fuzz run; exits non-zero if any failed.
#
# Environment: KITH_FUZZ_SECONDS (default 60; 0 skips fuzzing),
# KITH_SKIP_ASAN=1 (skip step 2, for a quicker local run),
# KITH_CTEST_ARGS (extra ctest arguments, e.g. "-L unit").
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

FUZZ_SECONDS=${KITH_FUZZ_SECONDS:-60}
PASSED=0
FAILED=0
SKIPPED=0
REPORT=()
START=$SECONDS

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1}

banner() { printf '\n==== %s\n' "$*"; }

# Print "passed failed skipped" for a ctest JUnit file, counted the way
# ctest counts: "notrun" is a failure (missing executable, failed fixture)
# unless the test asked to be skipped; disabled tests are skipped.
count_junit() {
  /usr/bin/python3 - "$1" <<'EOF'
import sys
import xml.etree.ElementTree as ET
p = f = s = 0
for tc in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    status = tc.get("status")
    skip = tc.find("skipped")
    if status == "run":
        p += 1
    elif status == "disabled":
        s += 1
    elif status == "notrun" and skip is not None and \
            (skip.get("message") or "").startswith("SKIP_"):
        s += 1
    else:
        f += 1
print(p, f, s)
EOF
}

# run_suite NAME BUILD_DIR CMAKE_FLAGS...
run_suite() {
  local name=$1 dir=$2 t0=$SECONDS rc counts p f s
  shift 2
  banner "$name: build in $dir ($*)"
  if ! KITH_BUILD_DIR=$dir KITH_CMAKE_FLAGS="$*" scripts/setup.sh; then
    echo "test.sh: $name: build failed"
    FAILED=$((FAILED + 1))
    REPORT+=("$name: BUILD FAILED")
    return
  fi
  banner "$name: ctest"
  local junit=$ROOT/$dir/ctest-junit.xml extra=()
  read -r -a extra <<<"${KITH_CTEST_ARGS:-}"
  rm -f "$junit"
  ctest --test-dir "$dir" --output-on-failure -j2 --output-junit "$junit" \
    "${extra[@]}"
  rc=$?
  if [[ -s $junit ]] && counts=$(count_junit "$junit"); then
    read -r p f s <<<"$counts"
  else
    p=0 f=0 s=0
  fi
  # ctest failing with no failed test to show for it (it could not run at
  # all, say) still counts once.
  if ((rc != 0 && f == 0)); then
    f=1
  fi
  PASSED=$((PASSED + p))
  FAILED=$((FAILED + f))
  SKIPPED=$((SKIPPED + s))
  REPORT+=("$name: $p passed, $f failed, $s skipped ($((SECONDS - t0)) s)")
}

run_fuzz() {
  local t0=$SECONDS
  [[ -f fuzz/run.sh ]] || return 0
  if ((FUZZ_SECONDS <= 0)); then
    REPORT+=("fuzz: skipped (KITH_FUZZ_SECONDS=$FUZZ_SECONDS)")
    return 0
  fi
  banner "fuzz: fuzz/run.sh $FUZZ_SECONDS"
  if KITH_FUZZ_SECONDS=$FUZZ_SECONDS bash fuzz/run.sh "$FUZZ_SECONDS"; then
    PASSED=$((PASSED + 1))
    REPORT+=("fuzz: passed ($((SECONDS - t0)) s)")
  else
    FAILED=$((FAILED + 1))
    REPORT+=("fuzz: FAILED ($((SECONDS - t0)) s)")
  fi
}

run_suite "default" build -DKITH_WERROR=ON
if [[ ${KITH_SKIP_ASAN:-0} != 1 ]]; then
  run_suite "asan+ubsan" build-asan -DKITH_SANITIZE=ON -DKITH_WERROR=ON
fi
run_fuzz

banner "summary ($((SECONDS - START)) s)"
for line in "${REPORT[@]}"; do
  echo "  $line"
done
((SKIPPED > 0)) && echo "($SKIPPED skipped)"
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
