import { describe, expect, it } from 'vitest';
import { FOOTER_HINT, fitText, layoutAsk, layoutMenu, type Rect, toWindow } from '../../src/menu/layout.js';
import type { MenuItem } from '../../src/menu/model.js';

const font = { charWidth: 9, ascent: 14, descent: 4 };
const screen = { width: 1024, height: 768 };
const items: MenuItem[] = [
  { name: 'alpha', kind: 'vm', state: 'running' },
  { name: 'beta', kind: 'vm', state: 'stopped' },
  { name: 'gamma', kind: 'vm', state: 'crashed' },
  { name: 'admin', kind: 'admin', state: 'running' },
];
const layout = (over: Partial<Parameters<typeof layoutMenu>[0]> = {}) =>
  layoutMenu({ items, selected: 'beta', phrase: 'amber otter quill 42', font, screen, ...over });

const inside = (a: Rect, b: Rect) =>
  a.x >= b.x && a.y >= b.y && a.x + a.width <= b.x + b.width && a.y + a.height <= b.y + b.height;
const overlaps = (a: Rect, b: Rect) =>
  a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;

describe('menu layout', () => {
  it('centres the box on the screen', () => {
    const l = layout();
    expect(Math.abs(l.window.x * 2 + l.window.width - screen.width)).toBeLessThanOrEqual(1);
    expect(Math.abs(l.window.y * 2 + l.window.height - screen.height)).toBeLessThanOrEqual(1);
  });

  it('draws the title, the phrase, every item with its number and badge, and the hint', () => {
    const texts = layout()
      .ops.filter((o) => o.op === 'text')
      .map((o) => o.text);
    expect(texts).toEqual([
      'kvmux',
      'host phrase: amber otter quill 42',
      '1',
      'alpha',
      'running',
      '2',
      'beta',
      'stopped',
      '3',
      'gamma',
      'crashed',
      '4',
      'admin',
      'host',
      FOOTER_HINT(4),
    ]);
    expect(FOOTER_HINT(4)).toBe('ScrLk ScrLk 1-4 switches directly \xb7 Esc closes');
  });

  it('gives one clickable row per item, stacked, inside the window, not overlapping', () => {
    const l = layout();
    const win = { x: 0, y: 0, width: l.window.width, height: l.window.height };
    expect(l.rows.map((r) => r.name)).toEqual(items.map((i) => i.name));
    l.rows.forEach((r, i) => {
      expect(inside(r, win)).toBe(true);
      const next = l.rows[i + 1];
      if (next) expect(overlaps(r, next)).toBe(false);
      expect(overlaps(r, l.parts['phrase']!)).toBe(false);
      expect(overlaps(r, l.parts['footer']!)).toBe(false);
    });
  });

  it('highlights only the selected row, and colours badges by state', () => {
    const l = layout();
    const sel = l.ops.filter((o) => o.op === 'rect' && o.color === 'selBg');
    expect(sel).toHaveLength(1);
    const { name: _n, ...rect } = l.rows[1]!;
    expect(sel[0]).toMatchObject(rect);
    const badgeColour = (name: string) =>
      l.ops.find(
        (o) => o.op === 'rect' && o.x === l.parts[`badge:${name}`]!.x && o.y === l.parts[`badge:${name}`]!.y,
      )?.color;
    expect(['alpha', 'beta', 'gamma'].map(badgeColour)).toEqual([
      'badge-running',
      'badge-stopped',
      'badge-crashed',
    ]);
    expect(layout({ selected: null }).ops.some((o) => o.op === 'rect' && o.color === 'selBg')).toBe(false);
  });

  it('keeps every text inside the window', () => {
    const l = layout();
    for (const o of l.ops) {
      if (o.op !== 'text') continue;
      expect(o.x).toBeGreaterThanOrEqual(0);
      expect(o.x + o.text.length * font.charWidth).toBeLessThanOrEqual(l.window.width);
      expect(o.y).toBeLessThanOrEqual(l.window.height);
    }
  });

  it('fits a long name and a small screen by truncating, never overflowing', () => {
    const small = { width: 320, height: 240 };
    const l = layout({
      screen: small,
      items: [{ name: 'a-very-long-vm-name-that-goes-on', kind: 'vm', state: 'running' }],
    });
    expect(l.window.width).toBeLessThanOrEqual(small.width);
    for (const o of l.ops)
      if (o.op === 'text') expect(o.x + o.text.length * font.charWidth).toBeLessThanOrEqual(l.window.width);
    expect(fitText('abcdefgh', 6)).toBe('abc...');
    expect(fitText('abc', 6)).toBe('abc');
  });

  it('maps screen pixels to window pixels for hit testing', () => {
    const l = layout();
    const r = l.rows[2]!;
    expect(toWindow(l, l.window.x + r.x + 1, l.window.y + r.y + 1)).toEqual({ x: r.x + 1, y: r.y + 1 });
  });

  it('lays out the ask dialog in the same style', () => {
    const l = layoutAsk(
      { id: '1', from: 'alpha', method: 'vm.stop', params: { name: 'beta' } },
      font,
      screen,
    );
    const texts = l.ops.filter((o) => o.op === 'text').map((o) => o.text);
    expect(texts).toEqual([
      'kvmux \xb7 confirm',
      'VM alpha asks to call vm.stop',
      '  name: beta',
      'Enter allow  \xb7  Esc deny',
    ]);
    expect(l.ops[0]).toMatchObject({ op: 'rect', color: 'border', x: 0, y: 0 });
  });

  it('wraps a long request onto more lines inside the screen, hiding nothing', () => {
    const name = `${'x'.repeat(200)}.qcow2`;
    const l = layoutAsk(
      { id: '1', from: 'alpha', method: 'image.upload.begin', params: { name, replace: true } },
      font,
      { width: 400, height: 768 },
    );
    const texts = l.ops.filter((o) => o.op === 'text').map((o) => o.text);
    expect(texts).toContain('  replace: true');
    expect(texts.join('').replace(/\s+/g, '')).toContain(`name:${name}`);
    expect(texts.every((t) => !t.endsWith('...'))).toBe(true);
    expect(l.window.x + l.window.width).toBeLessThanOrEqual(400);
  });
});
