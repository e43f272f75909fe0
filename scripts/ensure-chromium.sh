#!/usr/bin/env bash
# Make sure Debian's Chromium exists at /usr/bin/chromium, for the report's browser test
# (tests/integration/test_report_browser.py drives it through Playwright's Python package;
# Playwright's own browser download is never used). Installs Debian's package when missing
# and root; otherwise says so in one line and goes on: that test then skips, saying why.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Chromium missing: installing Debian's chromium package (for the report's browser test)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq chromium >&2
  [ -x "$CHROMIUM" ] && exit 0
fi
echo "$CHROMIUM not found: install Debian's 'chromium' package (apt-get install -y chromium); the report's browser test will skip" >&2
exit 0
