#!/usr/bin/env bash
# Debian packages the test suite uses: the grading sandbox (bubblewrap), a real PostgreSQL
# gradebook, a browser to read the built book as students do, and the Tang poems of
# chapter 5 (fortunes-zh). Installed when missing and we are root (CI, a fresh course
# machine); otherwise listed, and the tests that need them skip locally (on CI=true they
# fail instead). With arguments, only those packages (`make corpora`: fortunes-zh).
set -euo pipefail
packages=(bubblewrap postgresql chromium chromium-driver fonts-noto-cjk fortunes-zh)
if [ $# -gt 0 ]; then
  packages=("$@")
fi
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
  echo "warning: missing system packages (tests and book chapters that need them will skip or fail): ${missing[*]}" >&2
  echo "         install with: sudo apt-get install ${missing[*]}" >&2
fi
