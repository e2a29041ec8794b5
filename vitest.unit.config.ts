import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

/**
 * The unit tests: pure logic plus the local-socket, file and child-process edges, without X
 * servers, QEMU or network namespaces. scripts/test.sh runs them a second time on the Node the
 * appliance image carries (24), so a Node upgrade cannot break the box unnoticed.
 */
export const UNIT_TESTS = [
  'test/input/**/*.test.ts',
  'test/config/**/*.test.ts',
  'test/menu/**/*.test.ts',
  'test/util/**/*.test.ts',
  'test/resources/limits.test.ts',
  'test/control/{framing,lockout,policy,space-ledger,audit,error-codes,server,client,upload}.test.ts',
  'test/control/{passwd-methods,auth-upgrade,host-update}.test.ts',
  'test/net/{firewall,names}.test.ts',
  'test/session/{vm-state,vm-state-clean-exit,supervisor,qemu-argv}.test.ts',
  'test/session/subhost/{disks,import}.test.ts',
  'test/image/{layout,slots}.test.ts',
  'test/service/{displays,menu-controller,cpu-sampler,screenshot-store}.test.ts',
  'test/cli/node-flags.test.ts',
];

// not mergeConfig: it would append to the base include list instead of replacing it
export default defineConfig({ ...base, test: { ...base.test, include: UNIT_TESTS } });
