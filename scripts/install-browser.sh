#!/usr/bin/env bash
# Debian's Chromium for the dashboard's browser tests (tests/browser): Playwright drives it by path,
# /usr/bin/chromium, and downloads no browser of its own. Called by .ci/run before `make test`.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
