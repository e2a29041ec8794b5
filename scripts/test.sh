#!/usr/bin/env bash
# The test command (README, .ci/run): installs what it needs, then lint and the whole suite.
# Tests that need something this machine lacks (/dev/kvm, VTs, Xorg) skip loudly, never pass silently.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
npm ci --no-audit --no-fund
npm run lint
npm test
bash scripts/test-node24.sh
