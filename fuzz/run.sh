#!/bin/sh
# Build the libFuzzer targets with clang into build-fuzz and run each one.
#
#   fuzz/run.sh [SECONDS]     (default 60 per target)
#
# Seeds come from fuzz/corpus/<target>/ (read only); new inputs go to
# build-fuzz/corpus/<target>/ and crashes to build-fuzz/artifacts/. Prints
# each target's execution count; exits non-zero if any target crashed.
set -eu

secs=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${KITH_FUZZ_BUILD_DIR:-$root/build-fuzz}
flags="-fsanitize=fuzzer-no-link,address,undefined"
flags="$flags -fno-sanitize-recover=undefined -fno-omit-frame-pointer"

# The library is instrumented through CMAKE_C_FLAGS, so this works whether
# or not the top-level CMakeLists.txt adds the flags itself.
CC=clang cmake -S "$root" -B "$build" -DKITH_FUZZ=ON \
  -DKITH_BUILD_TESTS=OFF -DKITH_BUILD_BENCH=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS="$flags" >/dev/null

targets=
for src in "$root"/fuzz/fuzz_*.c; do
  targets="$targets $(basename "$src" .c)"
done
# shellcheck disable=SC2086 # one word per target
cmake --build "$build" -j "$(nproc)" --target $targets >/dev/null

status=0
mkdir -p "$build/artifacts"
for t in $targets; do
  work="$build/corpus/$t"
  seeds="$root/fuzz/corpus/$t"
  mkdir -p "$work" "$seeds"
  log="$build/$t.log"
  if "$build/fuzz/$t" -max_total_time="$secs" -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" \
    "$work" "$seeds" >"$log" 2>&1; then
    result=ok
  else
    result="CRASH (see $log and $build/artifacts/)"
    status=1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  echo "$t: ${execs:-?} executions in ${secs}s: $result"
done
exit $status
