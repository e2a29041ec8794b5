import { describe, expect, it } from 'vitest';
import {
  type DisplayEntry,
  emptyTable,
  listDisplays,
  nameAtIndex,
  planSwitch,
  removeEntry,
  setEntries,
  upsertEntry,
} from '../../src/service/displays.js';

const vm = (name: string, n: number, vt: number | null = null): DisplayEntry => ({
  name,
  kind: 'vm',
  display: `:${n}`,
  vt,
});
const admin: DisplayEntry = { name: 'admin', kind: 'admin', display: ':29', vt: 12 };

describe('display table', () => {
  it('keeps VMs in config order with admin last', () => {
    const t = setEntries(emptyTable(), [admin, vm('alpha', 21), vm('beta', 22)]);
    expect(t.entries.map((e) => e.name)).toEqual(['alpha', 'beta', 'admin']);
  });

  it('plans a switch to a known display and marks it active', () => {
    const t = setEntries(emptyTable(), [vm('alpha', 21, 8), vm('beta', 22, 9), admin]);
    const plan = planSwitch(t, 'beta');
    expect(plan.ok && plan.vt).toBe(9);
    expect(plan.ok && plan.changed).toBe(true);
    if (!plan.ok) throw new Error('expected ok');
    expect(
      listDisplays(plan.table)
        .filter((d) => d.active)
        .map((d) => d.name),
    ).toEqual(['beta']);
    const again = planSwitch(plan.table, 'beta');
    expect(again.ok && again.changed).toBe(false);
  });

  it('refuses unknown names and displays whose server is not up', () => {
    const t = setEntries(emptyTable(), [{ name: 'alpha', kind: 'vm', display: '', vt: null }]);
    expect(planSwitch(t, 'nope')).toEqual({ ok: false, reason: 'unknown', name: 'nope' });
    expect(planSwitch(t, 'alpha')).toEqual({ ok: false, reason: 'not-ready', name: 'alpha' });
  });

  it.each([
    [1, 'alpha'],
    [2, 'beta'],
    [3, 'admin'],
    [4, undefined],
    [0, undefined],
  ])('digit %i selects %s', (digit, name) => {
    const t = setEntries(emptyTable(), [vm('alpha', 21), vm('beta', 22), admin]);
    expect(nameAtIndex(t, digit)).toBe(name);
  });

  it('forgets the active display when it is removed, and replaces on upsert', () => {
    let t = setEntries(emptyTable(), [vm('alpha', 21), vm('beta', 22)]);
    const plan = planSwitch(t, 'beta');
    if (!plan.ok) throw new Error('expected ok');
    t = removeEntry(plan.table, 'beta');
    expect(t.active).toBeNull();
    t = upsertEntry(t, vm('alpha', 31));
    expect(t.entries).toEqual([vm('alpha', 31)]);
  });
});
