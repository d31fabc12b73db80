#!/usr/bin/env bash
# Debian packages the project uses: prometheus (brings promtool) for the metrics tests, wrk for
# bench/bench_http.py, chromium + chromium-driver for the browser tests of /docs and /ui/
# (tests/http/test_docs_page.py, tests/ops/test_console.py) and bench/bench_console.py.
# Installs them when missing and we are root; otherwise says what is missing (those tests then
# skip locally, and fail under CI=true).
set -euo pipefail
missing=()
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)  # bench/bench_http.py load generator
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The package may start a system service where systemd runs; the tests start their own.
  (command -v systemctl >/dev/null 2>&1 && systemctl disable --now prometheus >/dev/null 2>&1) || true
else
  echo "note: missing Debian packages: ${missing[*]} (run as root: apt-get install ${missing[*]})" >&2
fi
