import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { SLOTS_SH } from '../../src/image/initrd-init.js';
import { tempDir } from '../helpers/temp.js';

/**
 * The initrd's slot choice, run by a real busybox sh exactly as /init sources it, over every
 * combination of boot pointer, boot counters and slot health. The expectation is a plain model of
 * the A/B rule: try `next` first, then the other; skip a slot that started TRIES times without
 * reaching "kvmux ready" or that does not mount/verify; count the boot; move the pointer on fallback.
 */
const TRIES = 3;
const nexts = [null, 'a', 'b', 'x'] as const;
const tries = [null, '2', '3', 'junk'] as const; // absent=0, below, at the limit, garbage
const healths = ['', 'a', 'b', 'a b'] as const;

/** "slot tries current next rolledBack" after one boot; rolledBack: a line was added to rollback.log. */
function model(next: string | null, ta: string | null, tb: string | null, usable: string): string {
  const first = next === 'a' || next === 'b' ? next : 'a';
  const count = (t: string | null) => (t !== null && /^\d+$/.test(t) ? Number(t) : 0);
  const t = { a: count(ta), b: count(tb) };
  for (const s of [first, first === 'a' ? 'b' : 'a'] as const) {
    if (t[s] >= TRIES) continue;
    if (!usable.split(' ').includes(s)) continue;
    // chosen slot, its new counter, current, next (unchanged unless we fell back)
    return `${s} ${t[s] + 1} ${s} ${s === first ? (next ?? '-') : s} ${s === first ? 0 : 1}`;
  }
  // both used up their tries: the first usable one boots anyway, uncounted, the pointer unchanged
  for (const s of [first, first === 'a' ? 'b' : 'a'] as const) {
    if (t[s] >= TRIES && usable.split(' ').includes(s)) return `${s} ${t[s]} ${s} ${next ?? '-'} 1`;
  }
  return `none - - ${next ?? '-'} 0`;
}

const q = (v: string | null) => (v === null ? '-' : v);

describe('initrd slot choice (busybox sh)', () => {
  it('follows the A/B rule in every combination of pointer, counters and slot health', {
    timeout: 300_000,
  }, async () => {
    const dir = tempDir('kvmux-slots-');
    writeFileSync(join(dir, 'slots.sh'), SLOTS_SH);
    const cases: { label: string; want: string }[] = [];
    // one busybox process runs every case (a spawn per case is slow on a loaded 2-core box)
    const lines = [
      `TRIES=${TRIES}; say() { :; }; sync() { :; }`,
      'slot_usable() { case " $USABLE " in *" $1 "*) return 0;; esac; return 1; }',
      `. ${join(dir, 'slots.sh')}`,
      'setf() { [ "$2" = - ] || echo "$2" > "$B/$1"; }',
      'getf() { cat "$B/$1" 2>/dev/null || echo -; }',
    ];
    for (const next of nexts)
      for (const ta of tries)
        for (const tb of tries)
          for (const usable of healths) {
            const i = cases.length;
            cases.push({
              label: JSON.stringify({ next, ta, tb, usable }),
              want: model(next, ta, tb, usable),
            });
            lines.push(
              `B=${dir}/c${i}; mkdir -p $B; setf next ${q(next)}; setf tries-a ${q(ta)}; setf tries-b ${q(tb)}; USABLE="${usable}"`,
              `s=$(choose_slot) || s=none; if [ $s = none ]; then t=-; else t=$(getf tries-$s); fi; echo "${i} $s $t $(getf current) $(getf next) $(cat $B/rollback.log 2>/dev/null | wc -l)"`,
            );
          }
    writeFileSync(join(dir, 'cases.sh'), `${lines.join('\n')}\n`);
    const out = String((await execa('busybox', ['sh', join(dir, 'cases.sh')])).stdout)
      .trim()
      .split('\n');
    expect(out).toHaveLength(cases.length);
    for (const line of out) {
      const [idx, ...rest] = line.split(' ');
      const c = cases[Number(idx)];
      expect(rest.join(' '), c?.label).toBe(c?.want);
    }
    expect(cases.length).toBe(nexts.length * tries.length * tries.length * healths.length);
  });
});
