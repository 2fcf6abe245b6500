#!/usr/bin/env bash
# promtool (Debian package `prometheus`), for tests that run `promtool check metrics` on /metrics.
set -euo pipefail
if ! command -v promtool >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  # --no-install-recommends: the tool only, without starting a Prometheus server's extras.
  apt-get install -y -qq --no-install-recommends prometheus >&2
  # Debian starts the packaged server as a service where it can; tests need only promtool.
  (command -v systemctl >/dev/null 2>&1 && systemctl disable --now prometheus >/dev/null 2>&1) || true
fi
command -v promtool
