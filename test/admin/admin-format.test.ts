import { describe, expect, it } from 'vitest';
import {
  escapeTags,
  kvLines,
  logLines,
  memoryMessage,
  netLines,
  progressBar,
  vmLine,
  vmRows,
  wrapHints,
} from '../../src/admin/format.js';
import { editLine } from '../../src/admin/line-edit.js';
import { moveSelection } from '../../src/admin/pane.js';

describe('admin screen text', () => {
  it('reads vm.list defensively and colours states', () => {
    const rows = vmRows([
      { name: 'alpha', backend: 'qemu', state: 'crashed', pid: null, memoryMiB: 512, cpuPercent: 12.4 },
      'junk',
    ]);
    expect(rows[0]).toMatchObject({
      name: 'alpha',
      state: 'crashed',
      memoryMiB: 512,
      cpuPercent: 12.4,
      cpus: null,
    });
    expect(rows[1]).toMatchObject({ name: '?', state: 'unknown' });
    expect(vmLine(rows[0]!)).toEqual({
      text: expect.stringMatching(/^alpha\s+qemu\s+crashed\s+-\s+512 MiB\s+12%$/),
      colour: 'red',
    });
    expect(vmRows({ not: 'a list' })).toEqual([]);
    const gaveUp = vmRows([{ name: 'b', state: 'crashed', gaveUp: true }])[0]!;
    expect(vmLine(gaveUp)).toMatchObject({ text: expect.stringMatching(/^b\s+-\s+gave-up/), colour: 'red' });
  });

  it.each([
    [{ live: true }, 'applied live'],
    [{ applied: 'live' }, 'applied live'],
    [true, 'applied live'],
    [{ live: false }, 'takes effect on the next start'],
    [{ applied: 'next-start' }, 'takes effect on the next start'],
    [false, 'takes effect on the next start'],
    [null, 'did not say whether it applied live'],
  ])('says when a memory change takes effect (%j)', (result, words) => {
    expect(memoryMessage('beta', 1024, result)).toContain(words);
    expect(memoryMessage('beta', 1024, result)).toMatch(/^beta: memory set to 1024 MiB/);
  });

  it('draws a progress bar with sizes', () => {
    expect(progressBar(0, 4 << 20, 10)).toBe('[..........]   0%  0 B / 4.0 MiB');
    expect(progressBar(2 << 20, 4 << 20, 10)).toBe('[#####.....]  50%  2.0 MiB / 4.0 MiB');
    expect(progressBar(5, 0, 4)).toBe('[####] 100%  5 B / 0 B');
  });

  it('shows networks with no host address as anonymous, and flags any address', () => {
    const ok = netLines([
      {
        name: 'lan',
        bridge: 'kvbr-lan',
        uplink: null,
        addresses: [],
        members: [
          {
            kind: 'vm',
            vm: 'alpha',
            tap: 'kvt-alpha-0',
            mac: '52:54:00:00:00:01',
            drops: { packets: 3, bytes: 180 },
          },
        ],
      },
    ]);
    expect(ok.map((l) => l.text)).toEqual([
      'lan  bridge kvbr-lan  uplink none',
      '  host addresses: none (anonymous)',
      expect.stringMatching(/^ {2}kvt-alpha-0\s+alpha\s+52:54:00:00:00:01\s+drops 3 pkts \/ 180 B$/),
    ]);
    expect(ok[2]!.colour).toBe('yellow');
    const bad = netLines([{ name: 'lan', bridge: 'b', addresses: ['10.0.0.1/24'], members: [] }]);
    expect(bad[1]).toEqual({ text: '  host addresses: 10.0.0.1/24  <- SHOULD BE NONE', colour: 'red' });
    expect(netLines([])).toEqual([{ text: 'no networks configured', colour: 'white' }]);
  });

  it('renders status objects and log results as lines', () => {
    expect(kvLines({ next: 'B', slots: { A: { version: '1' } } })).toEqual([
      'next: B',
      'slots:',
      '  A:',
      '    version: 1',
    ]);
    expect(logLines(['a', { vm: 'x' }])).toEqual(['a', '{"vm":"x"}']);
    expect(logLines({ lines: ['z'] })).toEqual(['z']);
  });

  it('escapes blessed tags in server text', () => {
    expect(escapeTags('{red-fg}x{/}')).toBe('{open}red-fg{close}x{open}/{close}');
  });

  it('edits one line of text', () => {
    const s = { text: 'ab', max: 3 };
    expect(editLine(s, 'c', 'c')).toEqual({ kind: 'edit', state: { text: 'abc', max: 3 } });
    expect(editLine({ text: 'abc', max: 3 }, 'd', 'd')).toEqual({
      kind: 'edit',
      state: { text: 'abc', max: 3 },
    });
    expect(editLine(s, undefined, 'backspace')).toEqual({ kind: 'edit', state: { text: 'a', max: 3 } });
    expect(editLine(s, undefined, 'C-u')).toEqual({ kind: 'edit', state: { text: '', max: 3 } });
    expect(editLine(s, '\r', 'enter')).toEqual({ kind: 'submit', text: 'ab' });
    expect(editLine(s, undefined, 'escape')).toEqual({ kind: 'cancel' });
    expect(editLine(s, '\t', 'tab')).toEqual({ kind: 'edit', state: s });
  });

  it('moves a list selection within bounds', () => {
    expect([
      moveSelection(0, 3, 'up'),
      moveSelection(2, 3, 'down'),
      moveSelection(1, 3, 'end'),
      moveSelection(1, 3, 'x'),
    ]).toEqual([0, 2, 2, undefined]);
    expect(moveSelection(0, 0, 'down')).toBeUndefined();
  });
});

describe('wrapHints', () => {
  const vms =
    'Tab/Left back to menu  |  Up/Down  s start  t stop  f force  r restart  m memory  c cpus  l limits  h hibernate  v save  o restore  g migrate  i receive  a autostart  n new  d delete  w switch  |  F5 refresh  Ctrl-C quit';

  it('keeps one line when the hints fit', () => {
    expect(wrapHints('Up/Down  s start  |  F5 refresh', 80)).toEqual([' Up/Down  s start  |  F5 refresh']);
  });

  it('breaks only between hints, never inside one, and loses none at 128 or 80 columns', () => {
    for (const width of [128, 80]) {
      const lines = wrapHints(vms, width);
      expect(lines.length).toBeGreaterThan(1);
      for (const l of lines) expect(l.length).toBeLessThanOrEqual(width);
      // every hint is whole on some line: joined back, the text is the original
      expect(lines.map((l) => l.slice(1)).join('  ')).toBe(vms);
    }
    expect(wrapHints(vms, 128)).toHaveLength(2);
  });

  it('cuts at maxLines, saying so with "…", and cuts a hint wider than the line', () => {
    const cut = wrapHints(vms, 30, 3);
    expect(cut).toHaveLength(3);
    expect(cut[2]).toMatch(/ {2}…$/);
    for (const l of cut) expect(l.length).toBeLessThanOrEqual(30);
    // the hints shown are whole, in order, and the first ones of the text
    const shown = cut
      .map((l) => l.slice(1))
      .join('  ')
      .replace(/ {2}…$/, '');
    expect(vms.startsWith(shown)).toBe(true);
    expect(wrapHints(vms, 200, 3).join('')).not.toContain('…');
    expect(wrapHints('a-very-long-hint-without-spaces', 10)).toEqual([' a-very-lo']);
    // the last line holds one hint too wide for it and "…": the hint is cut, the "…" stays
    expect(wrapHints('aaaaaaaaaa  bbbbbbbbbb  cccc', 8, 2)).toEqual([' aaaaaaa', ' bbbbbb…']);
    expect(wrapHints('aa  bb', 2, 1)).toEqual([' …']);
  });
});
