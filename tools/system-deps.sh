#!/usr/bin/env bash
# Install the Debian packages some tests need (Prometheus for notebook 07, Chromium for the
# browser test) when this machine can: root with apt-get. Otherwise say so and go on: those
# tests then skip with a clear reason (and fail under CI=true, where they must run).
# Usage: tools/system-deps.sh PACKAGE...
set -u
missing=()
for package in "$@"; do
  # "deinstall ok config-files" (removed, config kept) is not installed.
  [ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" = "install ok installed" ] || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "note: not installing ${missing[*]} (needs root and apt-get); the tests that use them will skip." >&2
  exit 0
fi
echo "installing ${missing[*]} ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# policy-rc.d 101: do not start the packages' services (prometheus would listen on 0.0.0.0).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created_policy=1; fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
status=$?
[ "$created_policy" = 1 ] && rm -f "$policy"
exit $status
