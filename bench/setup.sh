#!/usr/bin/env bash
# The benchmark's system tool: wrk from Debian's packages, installed only when missing.
set -euo pipefail
if command -v wrk >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "bench: wrk is missing and this is not a Debian/Ubuntu system: install wrk, then rerun" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
echo "bench: installing wrk (apt-get)" >&2
# another apt-get may hold the lock for a while (other set-ups on the machine): wait for it
$SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq wrk >/dev/null
command -v wrk >/dev/null
