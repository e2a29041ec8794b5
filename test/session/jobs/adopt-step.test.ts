import { describe, expect, it } from 'vitest';
import { type AdoptStep, adoptStep } from '../../../src/session/jobs/adopt-job.js';
import type { JobKind } from '../../../src/session/jobs/job.js';

/**
 * What a restarted kvmux does with a VM whose record says it was mid-job: (job, QEMU's
 * query-migrate status, QEMU's run state) → step. The end states are in adopt-job.ts's comment.
 */
const cases: Array<[JobKind, string | undefined, string, AdoptStep]> = [
  // sender side: the stream goes on alone, or ended while no kvmux watched
  ['save', 'active', 'paused', 'follow'],
  ['save', 'completed', 'postmigrate', 'finish'],
  ['save', 'failed', 'paused', 'undo'],
  ['migrate', 'setup', 'running', 'follow'],
  ['migrate', 'active', 'running', 'follow'],
  ['migrate', 'device', 'finish-migrate', 'follow'],
  ['migrate', 'completed', 'postmigrate', 'finish'],
  ['migrate', 'failed', 'running', 'undo'],
  ['migrate', 'cancelled', 'running', 'undo'],
  // a sender that never got to `migrate`: nothing was sent, the guest stays here
  ['migrate', undefined, 'running', 'undo'],
  // receiving side
  ['restore', 'active', 'inmigrate', 'follow'],
  ['receive', 'active', 'inmigrate', 'follow'],
  ['restore', undefined, 'inmigrate', 'listen'],
  ['receive', undefined, 'inmigrate', 'listen'],
  ['restore', 'none', 'inmigrate', 'listen'],
  ['restore', 'completed', 'paused', 'finish'],
  ['receive', 'completed', 'running', 'finish'],
  ['restore', 'failed', 'paused', 'undo'],
  ['receive', 'cancelled', 'paused', 'undo'],
];

describe('adoptStep: a recorded job meets what QEMU says', () => {
  it.each(cases)('%s with query-migrate %s and run state %s → %s', (job, migrate, run, step) => {
    expect(adoptStep(job, migrate, run)).toBe(step);
  });
});
