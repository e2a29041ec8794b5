#!/usr/bin/env bash
# The unit tests (vitest.unit.config.ts) once more, on the Node the appliance image carries:
# the pinned Node 24 of src/image/node-runtime.ts, fetched once into a cache (npm checks its integrity).
# The host's own Node (20) runs the whole suite; this proves the code the box boots runs on 24.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${KVMUX_NODE_CACHE:-/var/tmp/kvmux-node}
[ -f dist/src/image/node-runtime.js ] || npx tsc -p tsconfig.json
node24=$(node --input-type=module -e \
  "import { imageNodeBinary } from './dist/src/image/node-runtime.js'; console.log(await imageNodeBinary('$cache'))")
echo "test-node24: unit tests on $("$node24" --version) ($node24)"
exec "$node24" node_modules/vitest/vitest.mjs run --config vitest.unit.config.ts "$@"
