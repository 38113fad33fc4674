#!/usr/bin/env bash
# The whole test suite from a fresh clone: system packages (when missing), npm packages, build, typecheck,
# unit + integration tests against real servers, and the end-to-end tests. Servers are started by the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export NEXT_TELEMETRY_DISABLED=1

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v memcached >/dev/null 2>&1 || missing+=(memcached)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v python3 >/dev/null 2>&1 || missing+=(python3) # the interop cross-check's Python peer (stdlib only)
# The observability e2e test evaluates the Grafana dashboard's queries in a real Prometheus (it brings promtool).
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Every registry request of this run (npm ci, the example apps' installs): abandoned after 60 s and retried 5 times,
# 2-60 s apart, instead of hanging.
export npm_config_fetch_retries=5 npm_config_fetch_retry_mintimeout=2000 npm_config_fetch_retry_maxtimeout=60000 npm_config_fetch_timeout=60000

echo "== npm ci"
npm ci --no-fund --no-audit --loglevel=error
echo "== build"
npm run build --silent
echo "== typecheck"
npm run typecheck --silent
echo "== lint and format (biome check)"
npm run lint --silent
# Before any test: the packed package and every example app's dependencies (e2e tests then only check them).
echo "== example apps: npm install (packed cachekit-next)"
started=$SECONDS
node scripts/install-examples.mjs
echo "   example apps installed in $((SECONDS - started)) s"

mkdir -p .cache
status=0
echo "== unit and integration tests (vitest)"
npx vitest run --reporter=default --reporter=json --outputFile.json=.cache/vitest.json || status=$?

if [ -d e2e ] && ls e2e/*.spec.ts >/dev/null 2>&1; then
  echo "== end-to-end tests (playwright)"
  npx playwright test || status=$?
fi

node scripts/summary.mjs
exit $status
