import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyCode } from '../../src/input/codes.js';
import { eventually, type Kvmux, sleep, startKvmux, xevKeys, xevLogger } from './kvmux-harness.js';

/**
 * `kvmux run` end to end on Xvfb: two `command` VMs whose program (xev) logs every key it gets.
 * Keys are written into the FIFO keyboard, the same pipeline a grabbed evdev keyboard feeds.
 */
const code = (name: string) => keyCode(name)!;
const press = (name: string) => `press ${code(name)}`;
const release = (name: string) => `release ${code(name)}`;

let k: Kvmux;
const both = (): string[] => [...xevKeys(k, 'left'), ...xevKeys(k, 'right')];
const active = async () =>
  (await k.call<Array<{ name: string; active: boolean }>>('display.list')).find((d) => d.active)?.name;

function windowsNamed(display: string, name: string): string[] {
  const tree = execFileSync('xwininfo', ['-display', display, '-root', '-tree'], { encoding: 'utf8' });
  return tree.split('\n').filter((l) => l.includes(`"${name}"`));
}

function mapState(display: string, id: string): string {
  const info = execFileSync('xwininfo', ['-display', display, '-id', id], { encoding: 'utf8' });
  return /Map State: (\w+)/.exec(info)?.[1] ?? '?';
}

beforeAll(async () => {
  k = await startKvmux({
    vms: [
      // left blocks Ctrl+T (vms[].blockedKeys), right does not
      { name: 'left', backend: 'command', command: xevLogger(), blockedKeys: ['ctrl+t'] },
      { name: 'right', backend: 'command', command: xevLogger() },
    ],
  });
  // xev maps its window and starts logging a moment after the process runs
  await sleep(1000);
}, 90_000);

afterAll(async () => {
  await k?.stop();
});

describe('kvmux run on Xvfb', () => {
  it('lists both VM displays, the first one active', async () => {
    const displays =
      await k.call<Array<{ name: string; display: string; vt: number | null; active: boolean }>>(
        'display.list',
      );
    expect(displays.map((d) => [d.name, d.active, d.vt])).toEqual([
      ['left', true, null],
      ['right', false, null],
    ]);
    expect(new Set(displays.map((d) => d.display)).size).toBe(2);
  });

  it('sends FIFO keys only to the active VM, and display.switch moves them', async () => {
    await k.kb.tap('a');
    await eventually(() => xevKeys(k, 'left').includes(release('a')), 'left gets a');
    expect(xevKeys(k, 'right')).not.toContain(press('a'));

    await k.call('display.switch', { name: 'right' });
    await k.kb.tap('b');
    await eventually(() => xevKeys(k, 'right').includes(release('b')), 'right gets b');
    expect(xevKeys(k, 'left')).not.toContain(press('b'));
  });

  it('releases a key held across a switch on the display that got the press', async () => {
    await k.call('display.switch', { name: 'right' });
    await k.kb.key('c', true);
    await eventually(() => xevKeys(k, 'right').includes(press('c')), 'right gets c down');
    await k.call('display.switch', { name: 'left' });
    await k.kb.key('c', false);
    await eventually(() => xevKeys(k, 'right').includes(release('c')), 'right gets c up');
    await sleep(200);
    expect(xevKeys(k, 'left').filter((e) => e.endsWith(` ${code('c')}`))).toEqual([]);
  });

  it('opens the trusted menu on a double Scroll Lock and a digit switches, nothing leaking to a VM', async () => {
    await k.call('display.switch', { name: 'left' });
    const before = both().length;
    await k.kb.doubleTap();
    let state = await k.call<{ open: boolean; items: string[]; selected: string }>('menu.state');
    for (let i = 0; i < 40 && !state.open; i++) {
      await sleep(25);
      state = await k.call('menu.state');
    }
    expect(state).toEqual({ open: true, items: ['left', 'right'], selected: 'left' });
    const displays = await k.call<Array<{ name: string; display: string }>>('display.list');
    const leftX = displays.find((d) => d.name === 'left')!.display;
    const menus = windowsNamed(leftX, 'kvmux menu');
    expect(menus).toHaveLength(1);
    expect(mapState(leftX, menus[0]!.trim().split(/\s+/)[0]!)).toBe('IsViewable');

    await k.kb.tap('2');
    for (let i = 0; i < 40 && (await active()) !== 'right'; i++) await sleep(25);
    expect(await active()).toBe('right');
    expect((await k.call<{ open: boolean }>('menu.state')).open).toBe(false);
    expect(mapState(leftX, menus[0]!.trim().split(/\s+/)[0]!)).toBe('IsUnMapped');
    await sleep(300);
    // neither Scroll Lock nor the digit reached any VM
    expect(both().slice(before)).toEqual([]);
  });

  it('switches directly with ScrLk ScrLk <digit> and no menu', async () => {
    await k.call('display.switch', { name: 'right' });
    const before = both().length;
    await k.kb.doubleTap();
    await k.kb.tap('1');
    for (let i = 0; i < 40 && (await active()) !== 'left'; i++) await sleep(25);
    expect(await active()).toBe('left');
    await sleep(300);
    expect(both().slice(before)).toEqual([]);
  });

  it('replays a single Scroll Lock tap to the active VM after the window', async () => {
    await k.call('display.switch', { name: 'left' });
    await k.kb.tap('scrolllock');
    await eventually(
      () => xevKeys(k, 'left').includes(release('scrolllock')),
      'left gets the lone tap',
      3000,
    );
  });

  it.each([
    [['leftctrl', 'leftalt'], 'backspace'],
    [['rightalt', 'rightctrl'], 'backspace'],
    [['leftctrl', 'leftalt'], 'f1'],
    [['leftalt', 'leftctrl'], 'f7'],
    [['leftctrl', 'rightalt'], 'f12'],
    [[], 'sysrq'],
    [['leftalt'], 'sysrq'],
  ])('swallows %j + %s: the final key reaches no VM and the X server lives', async (mods, key) => {
    await k.call('display.switch', { name: 'left' });
    const zs = () => xevKeys(k, 'left').filter((e) => e === release('z')).length;
    const before = zs();
    await k.kb.chord(mods, key);
    await k.kb.tap('z'); // a marker typed after the chord: once it arrives, the chord would have too
    await eventually(() => zs() === before + 1, 'marker z');
    expect(both().filter((e) => e.endsWith(` ${code(key)}`))).toEqual([]);
    const status = await k.call<{ displaysReady: number; displays: number }>('service.status');
    expect(status.displaysReady).toBe(status.displays);
  });

  it('passes Ctrl+Alt+Del to the active VM (Windows logins need it)', async () => {
    await k.call('display.switch', { name: 'right' });
    await k.kb.chord(['leftctrl', 'leftalt'], 'delete');
    await eventually(() => xevKeys(k, 'right').includes(press('delete')), 'right gets Delete');
    expect(xevKeys(k, 'left')).not.toContain(press('delete'));
  });

  it("swallows a VM's blockedKeys chord on that VM only; the other VM gets it", async () => {
    await k.call('display.switch', { name: 'left' });
    const zs = () => xevKeys(k, 'left').filter((e) => e === release('z')).length;
    const before = zs();
    await k.kb.chord(['leftctrl'], 't');
    await k.kb.tap('z'); // the marker: once it arrives, the chord would have too
    await eventually(() => zs() === before + 1, 'marker z');
    expect(xevKeys(k, 'left')).not.toContain(press('t'));
    expect(xevKeys(k, 'left')).toContain(press('leftctrl'));
    await k.call('display.switch', { name: 'right' });
    await k.kb.chord(['rightctrl'], 't');
    await eventually(() => xevKeys(k, 'right').includes(release('t')), 'right gets Ctrl+T');
  });

  it('answers bad control input with errors and keeps running', async () => {
    await expect(k.call('display.switch', { name: 'nope' })).rejects.toMatchObject({ code: -32004 });
    await expect(k.call('vm.start', { name: 'nope' })).rejects.toMatchObject({ code: -32004 });
    await expect(k.call('display.switch', {})).rejects.toMatchObject({ code: -32602 });
    await expect(k.call('no.such.method')).rejects.toMatchObject({ code: -32601 });
    expect((await k.call<Array<unknown>>('vm.list')).length).toBe(2);
  });
});
