import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isAlive, readProcStat } from '../../src/util/proc.js';
import { currentBootId, JsonRecordStore } from '../../src/util/record-store.js';
import { tempDir } from '../helpers/temp.js';

interface Rec {
  pid: number;
  startTime: number;
  vt: number;
}
const isRec = (_n: string, r: unknown): r is Rec =>
  typeof (r as Rec | null)?.pid === 'number' && typeof (r as Rec).startTime === 'number';

describe('JSON record store', () => {
  it("adopts by pid and start time only within one boot: an earlier boot's record names no live process", () => {
    expect(currentBootId()).toMatch(/^[0-9a-f-]{36}$/);
    const store = new JsonRecordStore<Rec>(tempDir('kvmux-records-'), 'displays', isRec);
    // a real live process (this one), as an adopting kvmux would find it
    const me = { pid: process.pid, startTime: readProcStat(process.pid)?.startTime ?? -2, vt: 9 };
    store.put('red', me);
    expect(JSON.parse(readFileSync(store.path('red'), 'utf8'))).toMatchObject({
      ...me,
      bootId: currentBootId(),
    });
    const same = store.load('red');
    expect(same && isAlive(same.pid, same.startTime)).toBe(true);

    // the same file after a reboot whose pids and start times came out the same (the appliance)
    const file = JSON.parse(readFileSync(store.path('red'), 'utf8'));
    writeFileSync(
      store.path('red'),
      JSON.stringify({ ...file, bootId: '00000000-0000-0000-0000-000000000000' }),
    );
    const earlier = store.load('red');
    expect(earlier).toMatchObject({ pid: me.pid, vt: 9 }); // its data stays (the VT to give back)
    expect(earlier && isAlive(earlier.pid, earlier.startTime)).toBe(false);

    // records from before boot ids were written keep the old rule (pid + start time)
    writeFileSync(store.path('red'), JSON.stringify(me));
    const old = store.load('red');
    expect(old && isAlive(old.pid, old.startTime)).toBe(true);
  });
});
