#!/usr/bin/env bash
# tests/man/check.sh KITH_BINARY KITH_1
# kith(1) renders with groff without a warning, and every line of
# `kith --help` and `kith COMMAND --help` is in the rendered page: the
# help and the man page say the same thing.
set -euo pipefail
kith=$1
page=$2
warn=$(groff -man -Tutf8 -ww -z "$page" 2>&1) || true
[[ -z $warn ]] || { echo "groff warns: $warn" >&2; exit 1; }
rendered=$(MANWIDTH=200 man -l "$page" 2>/dev/null | col -bx | sed 's/^ *//')
missing=0
for cmd in "" ping roster presence watch component demo; do
  while IFS= read -r line; do
    line=$(sed 's/^ *//' <<<"$line")
    [[ -z $line || $line == Usage:* ]] && continue
    if ! grep -qF -- "$line" <<<"$rendered"; then
      echo "not in kith.1 (kith $cmd --help): $line" >&2
      missing=$((missing + 1))
    fi
  done < <(LC_ALL=C "$kith" $cmd --help)
done
[[ $missing -eq 0 ]] || exit 1
echo "kith.1: ok"
