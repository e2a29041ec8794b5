import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import x11 from 'x11';
import { initialMenu, type MenuItem, menuStep } from '../src/menu/model.js';
import { OverlayMenu } from '../src/menu/overlay-menu.js';
import { connectDisplay } from '../src/x/connection.js';
import { startKioskWm } from '../src/x/kiosk-wm.js';
import { startXServer } from '../src/x/server.js';
import { summarize } from './stats.js';

/**
 * Menu open latency on Xvfb (display :140-:159): from the key event reaching the menu model to
 * MapNotify of the `kvmux menu` window, as seen by a SEPARATE X client selecting
 * SubstructureNotify on the root window; plus paint time (ops queued → server done, one round trip).
 * Goal: p99 ≤ 16.7 ms (one frame at 60 Hz). Above a full-screen window under the kiosk WM.
 */
const ROUNDS = 200;
const items: MenuItem[] = ['alpha', 'beta', 'gamma', 'delta'].map((name) => ({
  name,
  kind: 'vm',
  state: 'running',
}));
items.push({ name: 'admin', kind: 'admin', state: 'running' });

const waiters: Array<{ wid: number; name: string; resolve(t: number): void }> = [];

/** Resolves with the arrival time of the observer's next Map/UnmapNotify for `wid`. */
function nextNotify(wid: number, name: 'MapNotify' | 'UnmapNotify'): Promise<number> {
  return new Promise((resolve) => waiters.push({ wid, name, resolve }));
}

export async function run(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'kvmux-menu-bench-'));
  const server = await startXServer({
    kind: 'xvfb',
    logDir: dir,
    range: [140, 159],
    width: 1920,
    height: 1080,
  });
  const wm = await startKioskWm(server.display);
  const observer = await connectDisplay(server.display);
  const vm = await connectDisplay(server.display);
  let menu: OverlayMenu | null = null;
  try {
    const win = vm.client.AllocID();
    vm.client.CreateWindow(win, vm.root, 0, 0, 300, 200, 0, 0, 0, 0, { backgroundPixel: 0x336699 });
    vm.client.MapWindow(win);
    await vm.sync();
    await wm.settle();
    observer.client.ChangeWindowAttributes(observer.root, {
      eventMask: x11.eventMask['SubstructureNotify']!,
    });
    observer.onEvent((ev) => {
      const t = performance.now();
      const i = waiters.findIndex((w) => w.name === ev.name && w.wid === ev.wid);
      if (i >= 0) waiters.splice(i, 1)[0]!.resolve(t);
    });
    await observer.sync();
    menu = await OverlayMenu.create({ display: server.display, phrase: 'amber otter quill 42' });
    const closed = initialMenu(items);
    const mapMs: number[] = [];
    const paintMs: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const mapped = nextNotify(menu.overlay.wid, 'MapNotify');
      const t0 = performance.now();
      const opened = menuStep(closed, { kind: 'open', active: 'beta' }).state;
      menu.open(opened);
      mapMs.push((await mapped) - t0);
      const p0 = performance.now();
      menu.update(menuStep(opened, { kind: 'key', code: 108, value: 1 }).state);
      await menu.overlay.sync();
      paintMs.push(performance.now() - p0);
      const unmapped = nextNotify(menu.overlay.wid, 'UnmapNotify');
      menu.close();
      await unmapped;
    }
    const map = summarize(mapMs);
    return {
      display: server.display,
      screen: '1920x1080',
      rounds: ROUNDS,
      keyToMapNotifyMs: map,
      paintRoundTripMs: summarize(paintMs),
      goalP99Ms: 16.7,
      meetsGoal: map.p99 <= 16.7,
    };
  } finally {
    await menu?.destroy();
    await vm.close();
    await observer.close();
    await wm.stop();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
