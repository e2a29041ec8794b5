import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCREENSHOTS_KEPT } from '../../src/service/screenshot-store.js';
import { type Kvmux, startKvmux } from './kvmux-harness.js';

/**
 * Issue 11 finding 7: screenshots kvmux names itself are capped, so a caller in a loop (a guest
 * allowed display.screenshot) cannot fill stateDir. Through the real control socket.
 */
let k: Kvmux;

beforeAll(async () => {
  k = await startKvmux({ vms: [{ name: 'shot', backend: 'command', command: ['xterm'] }] });
}, 90_000);

afterAll(async () => {
  await k?.stop();
});

describe('display.screenshot in a loop', () => {
  it(`keeps only the newest ${SCREENSHOTS_KEPT} in stateDir/screenshots`, async () => {
    const paths: string[] = [];
    for (let i = 0; i < SCREENSHOTS_KEPT + 6; i++) {
      paths.push((await k.call<{ path: string }>('display.screenshot', { name: 'shot' })).path);
    }
    const dir = join(k.dir, 'state', 'screenshots');
    const kept = readdirSync(dir);
    expect(kept).toHaveLength(SCREENSHOTS_KEPT);
    // the newest survive (the last call's file among them)
    expect(kept).toContain(paths.at(-1)!.split('/').at(-1));
  }, 120_000);
});
