#!/usr/bin/env bash
# tests/install/run.sh BUILD_DIR
#
# Installs the kith built in BUILD_DIR into a temporary prefix, then builds
# tests/install/consumer.c against it twice, with pkg-config and with
# find_package(kith), and runs both. Checks the installed files too:
# headers, shared library with its SONAME, static library, pkg-config file,
# CMake package, the kith(1) man page when the build made one. The
# pkg-config build is strict C99: the public headers must not need C11.
set -euo pipefail

BUILD=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TMP=$(mktemp -d /tmp/kith-install-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
PREFIX=$TMP/prefix

fail() {
  echo "install test: $*" >&2
  exit 1
}

cmake --install "$BUILD" --prefix "$PREFIX" >"$TMP/install.log" ||
  { cat "$TMP/install.log" >&2; fail "cmake --install failed"; }

LIBDIR=$(dirname "$(find "$PREFIX" -name 'libkith.so' | head -1)")
[[ -n $LIBDIR && -d $LIBDIR ]] || fail "no libkith.so installed"
[[ -f $LIBDIR/libkith.a ]] || fail "no libkith.a installed"
[[ -f $PREFIX/include/kith/kith.h && -f $PREFIX/include/kith/version.h &&
  -f $PREFIX/include/kith/store.h ]] || fail "headers missing"
soname=$(objdump -p "$LIBDIR/libkith.so" | awk '/SONAME/ {print $2}')
[[ $soname == libkith.so.* ]] || fail "bad SONAME '$soname'"
[[ -e $LIBDIR/$soname ]] || fail "$soname not installed"
[[ -f $LIBDIR/pkgconfig/kith.pc ]] || fail "no kith.pc"
[[ -f $LIBDIR/cmake/kith/kithConfig.cmake ]] || fail "no kithConfig.cmake"
if [[ -f $BUILD/kith.1 ]]; then
  [[ -f $PREFIX/share/man/man1/kith.1 ]] || fail "kith.1 not installed"
fi

# 1. pkg-config
export PKG_CONFIG_PATH=$LIBDIR/pkgconfig
# shellcheck disable=SC2046
cc -std=c99 -pedantic -Wall -Wextra -Werror -o "$TMP/consumer-pc" "$HERE/consumer.c" \
  $(pkg-config --cflags --libs kith) || fail "pkg-config build failed"
LD_LIBRARY_PATH=$LIBDIR "$TMP/consumer-pc" >"$TMP/out-pc" ||
  fail "pkg-config build does not run"
grep -q "node romeo@example.net" "$TMP/out-pc" || fail "unexpected output"

# 2. find_package(kith)
cmake -S "$HERE" -B "$TMP/cm" -DCMAKE_PREFIX_PATH="$PREFIX" \
  >"$TMP/cm.log" 2>&1 || { cat "$TMP/cm.log" >&2; fail "find_package failed"; }
cmake --build "$TMP/cm" >>"$TMP/cm.log" 2>&1 ||
  { cat "$TMP/cm.log" >&2; fail "find_package build failed"; }
LD_LIBRARY_PATH=$LIBDIR "$TMP/cm/consumer" >"$TMP/out-cm" ||
  fail "find_package build does not run"
grep -q "node romeo@example.net" "$TMP/out-cm" || fail "unexpected output"

echo "install test: ok ($(cat "$TMP/out-pc"); SONAME $soname)"
