import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { errText } from '../util/errors.js';
import { connectDisplay } from '../x/connection.js';
import { probe } from '../x/screenshot.js';
import { activeVt } from '../x/vt.js';
import { writeDemoDisk } from './demo-disk.js';
import { sleep } from './fifo-keys.js';
import { type Kvmux, startKvmux } from './kvmux-process.js';

/**
 * The demo: real QEMU VMs and an xterm, each full-screen on its own X display (Xorg on real VTs
 * when this machine can, else Xvfb), driven through the FIFO keyboard. Every step is a PNG in
 * the output folder, plus story.png (all steps side by side) and story.txt.
 */
const PASSWORD = 'demo-password';

interface Step {
  file: string;
  caption: string;
}

function chooseConsole(): 'vt' | 'virtual' {
  const forced = process.env['KVMUX_DEMO_CONSOLE'];
  if (forced === 'vt' || forced === 'virtual') return forced;
  try {
    closeSync(openSync('/dev/tty0', 'r+'));
  } catch {
    return 'virtual';
  }
  return existsSync('/usr/lib/xorg/modules/drivers/dummy_drv.so') ? 'vt' : 'virtual';
}

function demoVms(work: string): unknown[] {
  const disks = ['alpha', 'beta', 'gamma'].map((name, colour) => {
    const disk = join(work, `${name}.img`);
    writeDemoDisk(disk, { text: name, colour });
    return { name, disk };
  });
  const banner = 'echo "notes: an ordinary X program as a kvmux VM. Type here:"; exec cat';
  return [
    ...disks.map(({ name, disk }) => ({ name, backend: 'qemu', qemu: { disk, memoryMiB: 64 } })),
    {
      name: 'notes',
      backend: 'command',
      command: ['xterm', '-fn', '10x20', '-bg', '#202a20', '-fg', '#d0ffd0', '-e', 'sh', '-c', banner],
    },
  ];
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await sleep(200);
  }
  throw new Error(`demo: timed out waiting for ${what}${last ? ` (${String(last)})` : ''}`);
}

export async function runDemo(outDir: string): Promise<void> {
  mkdirSync(outDir, { recursive: true });
  const console = chooseConsole();
  const vtBefore = console === 'vt' ? activeVt() : null;
  say(
    `console: ${console}${console === 'vt' ? ` (Xorg dummy on real VTs; VT ${vtBefore} active now)` : ' (Xvfb)'}`,
  );
  const t0 = Date.now();
  const disks = mkdtempSync(join(tmpdir(), 'kvmux-demo-disks-'));
  const k = await startKvmux({
    console,
    vms: demoVms(disks),
    admin: true,
    password: PASSWORD,
    firstDisplay: 40,
    firstVt: 8,
    extra: { menu: { phrase: 'blue teapot at dawn' } },
    readyTimeoutMs: 120_000,
  }).catch((err: unknown) => {
    rmSync(disks, { recursive: true, force: true });
    throw err;
  });
  say(`all VMs running ${((Date.now() - t0) / 1000).toFixed(1)} s after start`);
  const steps: Step[] = [];
  try {
    await driveStory(k, outDir, steps);
  } finally {
    copyFileSync(join(k.dir, 'kvmux.log'), join(outDir, 'kvmux.log'));
    await k.stop();
    rmSync(disks, { recursive: true, force: true });
  }
  await story(outDir, steps);
  if (vtBefore !== null) say(`VT restored: ${activeVt()} (was ${vtBefore})`);
  say(`kvmux log: ${join(outDir, 'kvmux.log')}`);
  say(`screenshots: ${outDir}`);
}

/** The story, step by step; each step is a screenshot with a caption. */
async function driveStory(k: Kvmux, outDir: string, steps: Step[]): Promise<void> {
  const { call, kb } = k;
  // SeaBIOS takes a few seconds before the boot sector paints its colour
  const all = await call<Array<{ name: string; display: string }>>('display.list');
  for (const d of all.filter((x: { name: string }) => ['alpha', 'beta', 'gamma'].includes(x.name))) {
    await waitFor(`${d.name} to paint`, () => painted(d.display), 60_000);
  }
  const shot = async (name: string, file: string, caption: string) => {
    await call('display.screenshot', { name, path: join(outDir, file) });
    steps.push({ file, caption });
    say(`${file}: ${caption}`);
  };
  const displays = await call<Array<{ name: string }>>('display.list');
  let n = 1;
  for (const d of displays) {
    if (d.name === 'admin') await sleep(1500);
    await shot(d.name, `0${n++}-${d.name}.png`, `display "${d.name}" on its own X server`);
  }
  await kb.doubleTap();
  await waitFor(
    'the menu',
    async () => ((await call<{ open: boolean }>('menu.state')).open ? true : undefined),
    5000,
  );
  await sleep(150);
  await shot(
    'alpha',
    '10-menu-open.png',
    'Scroll Lock twice: the switcher menu over alpha, with the host phrase',
  );
  await kb.tap('down');
  await sleep(150);
  await shot('alpha', '11-menu-down.png', 'Down arrow: beta selected');
  await kb.tap('enter');
  await sleep(600);
  await shot('beta', '12-beta-chosen.png', `Enter: beta is shown${vtLine(displays, 'beta')}`);
  await kb.doubleTap();
  await sleep(100);
  await kb.tap('4');
  await sleep(600);
  await kb.type('Hello from the physical keyboard.');
  await sleep(500);
  await shot(
    'notes',
    '13-direct-switch-typing.png',
    'ScrLk ScrLk 4 switches straight to notes; typed text arrives',
  );
  await kb.chord(['leftctrl', 'leftalt'], 'backspace');
  await kb.chord(['leftctrl', 'leftalt'], 'f1');
  await kb.chord(['leftalt'], 'sysrq');
  await sleep(500);
  const still = await call<Array<{ name: string; active: boolean }>>('display.list');
  await shot(
    'notes',
    '14-escapes-swallowed.png',
    `Ctrl+Alt+Backspace, Ctrl+Alt+F1, Alt+SysRq swallowed: X alive, still on ${still.find((d: { active: boolean }) => d.active)?.name}`,
  );
  await kb.doubleTap();
  await sleep(100);
  await kb.tap('5');
  await sleep(800);
  await shot('admin', '15-admin.png', 'ScrLk ScrLk 5: the password-protected admin screen');
  await kb.type(PASSWORD);
  await kb.tap('enter');
  await sleep(1500);
  await shot('admin', '16-admin-logged-in.png', 'after the host password: VMs and their state');
}

async function painted(display: string): Promise<true | undefined> {
  const conn = await connectDisplay(display);
  try {
    const [c] = await probe(conn, [[Math.floor(conn.width / 2), Math.floor(conn.height * 0.7)]]);
    return c && c.r + c.g + c.b > 0 ? true : undefined;
  } finally {
    await conn.close();
  }
}

function vtLine(displays: Array<{ name: string; vt?: number | null }>, name: string): string {
  const vt = displays.find((d) => d.name === name)?.vt;
  return vt ? ` (VT ${vt} active: ${activeVt()})` : '';
}

/**
 * The caption font, by path: ImageMagick's default (helvetica, a Ghostscript font) is missing on a
 * fresh Debian, and then montage fails. scripts/install-deps.sh installs fonts-dejavu-core.
 */
export const CAPTION_FONT = '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf';

async function story(outDir: string, steps: Step[]): Promise<void> {
  writeFileSync(join(outDir, 'story.txt'), steps.map((s) => `${s.file}  ${s.caption}`).join('\n') + '\n');
  if (!existsSync(CAPTION_FONT)) {
    say(`no captioned story.png: ${CAPTION_FONT} is missing (apt-get install fonts-dejavu-core)`);
    process.exitCode = 1;
    return;
  }
  const args = steps.flatMap((s) => ['-label', captionLines(s.caption), join(outDir, s.file)]);
  const r = await execa(
    'montage',
    [
      '-font',
      CAPTION_FONT,
      ...args,
      ...['-tile', '3x', '-geometry', '512x384+8+8', '-pointsize', '14', join(outDir, 'story.png')],
    ],
    { reject: false },
  );
  if (r.exitCode !== 0) {
    say(`montage failed (${r.stderr}); the single PNGs are there`);
    process.exitCode = 1;
  } else say(`story.png: ${steps.length} captioned screenshots`);
}

/**
 * A caption on lines of at most `width` characters, broken between words: a 512 px tile holds about
 * 65 at 14 points, and montage cuts a longer line at both ends.
 */
function captionLines(text: string, width = 60): string {
  const lines: string[] = [];
  for (const word of text.split(' ')) {
    const last = lines.at(-1);
    if (last !== undefined && last.length + 1 + word.length <= width)
      lines[lines.length - 1] = `${last} ${word}`;
    else lines.push(word);
  }
  return lines.join('\n');
}

function say(line: string): void {
  process.stdout.write(`demo: ${line}\n`);
}

const out = resolve(process.argv[2] ?? join('demo-out', new Date().toISOString().replace(/[:.]/g, '-')));
await runDemo(out).catch((err: unknown) => {
  process.stderr.write(`demo failed: ${errText(err)}\n`);
  process.exitCode = 1;
});
if (readdirSync(out).length === 0) process.exitCode = 1;
