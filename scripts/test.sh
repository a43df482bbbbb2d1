#!/usr/bin/env bash
# Installs everything the test suite needs (apt + pip), then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ] || ! command -v wrk >/dev/null 2>&1 \
        || ! command -v curl >/dev/null 2>&1 || ! command -v openssl >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx-light wrk curl openssl >/dev/null
fi
python3 -m pip install -q -e '.[test]'
exec python3 -m pytest "$@"
