#!/usr/bin/env bash
# PostgreSQL 15 server binaries (initdb, pg_ctl, postgres) for the tests and `txmesh demo --pg`: Debian's
# postgresql-15 package. Tests start their own throw-away server from these (see @txmesh/lab's
# startTempPostgres); nothing is started here. Prints the folder of the binaries on its last line.
set -euo pipefail
bin=/usr/lib/postgresql/15/bin
if [ -x "$bin/pg_ctl" ] && [ -x "$bin/initdb" ] && [ -x "$bin/postgres" ]; then
  echo "$bin"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "postgresql.sh: $bin is missing and installing it needs root (apt-get install postgresql-15)" >&2
  exit 1
fi
apt-get update -qq >&2
# The package's own cluster is of no use here: the tests run initdb in a temporary folder.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 >&2
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql/15/main ]; then
  pg_ctlcluster 15 main stop >&2 2>&1 || true
fi
"$bin/postgres" --version >&2
echo "$bin"
