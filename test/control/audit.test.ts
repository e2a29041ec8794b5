import { readFileSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { openAuditLog, summarizeParams } from '../../src/control/auth/audit.js';
import { tempDir } from './helpers.js';

describe('audit log', () => {
  it('appends JSON lines with mode 0600 and tails across block boundaries', async () => {
    const t = tempDir();
    const log = await openAuditLog(t.dir);
    const writes = [];
    for (let i = 0; i < 3000; i++) {
      writes.push(
        log.append({
          time: `t${i}`,
          from: 'alpha',
          method: 'vm.list',
          params: { note: 'ünïcødé ✓'.repeat(i % 7) },
          outcome: 'ok',
        }),
      );
    }
    await Promise.all(writes);
    expect(statSync(log.path).mode & 0o777).toBe(0o600);
    expect((await log.tail(3)).map((e) => e.time)).toEqual(['t2997', 't2998', 't2999']);
    const many = await log.tail(2500);
    expect(many).toHaveLength(2500);
    expect(many[0]!.time).toBe('t500');
    expect(
      many.every((e, i) => (e.params as { note: string }).note === 'ünïcødé ✓'.repeat((500 + i) % 7)),
    ).toBe(true);
    expect(await log.tail(10_000)).toHaveLength(3000);
    await log.close();
    // reopening appends, never truncates
    const again = await openAuditLog(t.dir);
    await again.append({
      time: 'later',
      from: 'local',
      method: 'x',
      params: {},
      outcome: 'error',
      code: -32601,
    });
    await again.close();
    expect(readFileSync(again.path, 'utf8').trim().split('\n')).toHaveLength(3001);
    t.cleanup();
  });

  it('summarises params without secrets or bulk', () => {
    expect(
      summarizeParams({
        password: 'hunter2',
        newPassword: 'x',
        data: 'QUJD',
        token: 5,
        name: 'alpha',
        nested: { deep: { deeper: 1 }, list: [1, 2] },
        long: 'y'.repeat(200),
      }),
    ).toEqual({
      password: '[redacted]',
      newPassword: '[redacted]',
      data: '[redacted]',
      token: '[redacted]',
      name: 'alpha',
      nested: { deep: '{…}', list: '[array of 2]' },
      long: `${'y'.repeat(80)}…(200 chars)`,
    });
  });
});
