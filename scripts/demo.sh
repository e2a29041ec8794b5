#!/usr/bin/env bash
# The demo: installs what it needs, builds kvmux, runs three QEMU VMs and an xterm on their own
# displays (real VTs when possible), drives the keyboard through the FIFO, writes screenshots.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build --silent
exec node dist/src/demo/demo.js "$@"
