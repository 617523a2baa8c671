#!/usr/bin/env bash
# Debian packages the test suite uses: the grading sandbox (bubblewrap), a real PostgreSQL
# gradebook, and a browser to read the built book as students do. Installed when missing
# and we are root (CI, a fresh course machine); otherwise listed, and the tests that need
# them skip locally (on CI=true they fail instead).
set -euo pipefail
packages=(bubblewrap postgresql chromium chromium-driver fonts-noto-cjk)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing system packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "warning: missing system packages (tests that need them will skip): ${missing[*]}" >&2
  echo "         install with: sudo apt-get install ${missing[*]}" >&2
fi
