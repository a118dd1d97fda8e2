#!/usr/bin/env bash
# setup.sh: make a fresh Debian 12 machine ready for kith, then build it.
#
#   scripts/setup.sh [--deps-only] [CMAKE_FLAG...]
#
# 1. Installs the Debian packages kith builds, tests and demos with
#    (apt-get update only when something is missing, so re-runs are fast).
#    Needs root for that step only.
# 2. Keeps the system's own Prosody and Redis services stopped and
#    disabled: the tests start their own servers on ports of their own, and
#    a stray system daemon on 5222/6379 only confuses people.
# 3. Configures and builds kith (skipped with --deps-only):
#      cmake -S . -B $KITH_BUILD_DIR -DCMAKE_BUILD_TYPE=RelWithDebInfo \
#            $KITH_CMAKE_FLAGS CMAKE_FLAG...
#      cmake --build $KITH_BUILD_DIR -j$(nproc)
#
# Environment: KITH_BUILD_DIR (default build, relative to the repository),
# KITH_CMAKE_FLAGS (extra cmake flags, split on spaces),
# KITH_BUILD_TYPE (default RelWithDebInfo).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

PACKAGES=(
  build-essential cmake pkg-config clang libclang-rt-14-dev clang-format
  libexpat1-dev libssl-dev libgsasl-dev libidn-dev libsqlite3-dev
  libhiredis-dev libjansson-dev libcmocka-dev libuv1-dev libevent-dev doxygen
  groff-base man-db bsdextrautils
  prosody redis-server python3 python3-slixmpp openssl ca-certificates
)
# System services installed by the packages above that must not run.
SERVICES=(prosody redis-server)

say() { echo "setup.sh: $*" >&2; }
die() {
  say "$*"
  exit 1
}

missing_packages() {
  local p status
  for p in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    [[ $status == ii* ]] || echo "$p"
  done
}

# policy-rc.d answering 101 stops maintainer scripts from starting services
# while we install. Ours is removed afterwards; an existing one is kept.
POLICY=/usr/sbin/policy-rc.d
OWN_POLICY=0
block_service_starts() {
  if [[ ! -e $POLICY ]]; then
    printf '#!/bin/sh\n# Temporary, from kith scripts/setup.sh\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
    OWN_POLICY=1
  fi
}
unblock_service_starts() {
  if ((OWN_POLICY)); then
    rm -f "$POLICY"
    OWN_POLICY=0
  fi
}

install_packages() {
  local missing
  mapfile -t missing < <(missing_packages)
  ((${#missing[@]} == 0)) && return 0
  [[ $(id -u) -eq 0 ]] || die "missing packages (${missing[*]}); run as root"
  say "installing: ${missing[*]}"
  block_service_starts
  trap unblock_service_starts EXIT
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  unblock_service_starts
  trap - EXIT
  mapfile -t missing < <(missing_packages)
  ((${#missing[@]} == 0)) || die "still missing after install: ${missing[*]}"
}

# Kill the daemon whose pid file is $1, if its command line mentions $2.
kill_pidfile() {
  local pidfile=$1 name=$2 pid i
  [[ -r $pidfile ]] || return 0
  pid=$(tr -dc '0-9' <"$pidfile")
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 0
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$name" || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

# Stop and disable the system services, whichever init there is: systemd
# when it runs, else the SysV scripts, and finally the pid files, since
# in a container `service` may find nothing to talk to.
stop_system_services() {
  [[ $(id -u) -eq 0 ]] || return 0
  local s
  for s in "${SERVICES[@]}"; do
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
      systemctl disable --now "$s" >/dev/null 2>&1 || true
    else
      if [[ -x /etc/init.d/$s ]]; then
        /etc/init.d/"$s" stop >/dev/null 2>&1 || true
      fi
      if command -v update-rc.d >/dev/null; then
        update-rc.d "$s" disable >/dev/null 2>&1 || true
      fi
    fi
  done
  kill_pidfile /run/prosody/prosody.pid prosody
  kill_pidfile /run/redis/redis-server.pid redis-server
}

build() {
  local dir=${KITH_BUILD_DIR:-build} flags=()
  [[ $dir == /* ]] || dir=$ROOT/$dir
  # Word splitting is the point: KITH_CMAKE_FLAGS="-DA=ON -DB=OFF".
  read -r -a flags <<<"${KITH_CMAKE_FLAGS:-}"
  mkdir -p "$dir"
  # Quiet unless it fails; the full output stays in the build directory.
  cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE="${KITH_BUILD_TYPE:-RelWithDebInfo}" \
    "${flags[@]}" "$@" >"$dir/configure.log" 2>&1 || {
    cat "$dir/configure.log" >&2
    die "cmake configure failed (log: $dir/configure.log)"
  }
  cmake --build "$dir" -j"$(nproc)"
}

main() {
  local deps_only=0
  if [[ ${1:-} == --deps-only ]]; then
    deps_only=1
    shift
  fi
  install_packages
  stop_system_services
  ((deps_only)) && return 0
  build "$@"
}

main "$@"
