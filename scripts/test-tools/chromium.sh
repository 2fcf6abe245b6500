#!/usr/bin/env bash
# Chromium (Debian package `chromium`), driven headless by playwright-core in the dashboard test.
# Never `npx playwright install`: the browser comes from Debian, not from a download of Playwright's own.
set -euo pipefail
if [ ! -x /usr/bin/chromium ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
fi
echo /usr/bin/chromium
