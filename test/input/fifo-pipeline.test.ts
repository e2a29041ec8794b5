import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EV, keyCode, SYN_REPORT } from '../../src/input/codes.js';
import { encodeEvent, INPUT_EVENT_SIZE } from '../../src/input/event.js';
import { InputPipeline } from '../../src/input/pipeline.js';
import { RecordingDisplays, RecordingLedSink } from '../../src/input/recording-sink.js';
import { InputSources } from '../../src/input/sources.js';
import { tempDir } from '../helpers/temp.js';

/** Raw struct input_event records: each `name down|up` is followed by a SYN_REPORT, as the kernel does. */
function keys(...steps: string[]): Buffer {
  const buf = Buffer.alloc(steps.length * 2 * INPUT_EVENT_SIZE);
  steps.forEach((step, i) => {
    const [name, what] = step.split(' ');
    const code = keyCode(name!);
    if (code === undefined) throw new Error(`no key ${name}`);
    encodeEvent(
      { type: EV.KEY, code, value: what === 'down' ? 1 : 0, timeMs: Date.now() },
      buf,
      2 * i * INPUT_EVENT_SIZE,
    );
    encodeEvent({ type: EV.SYN, code: SYN_REPORT, value: 0 }, buf, (2 * i + 1) * INPUT_EVENT_SIZE);
  });
  return buf;
}

describe('FIFO input through the whole pipeline (raw records in a real mkfifo)', () => {
  let dir: string;
  let fifo: string;
  let rec: RecordingDisplays;
  let pipeline: InputPipeline;
  let sources: InputSources;
  const events: string[] = [];

  beforeEach(() => {
    dir = tempDir('kvmux-fifo-');
    fifo = join(dir, 'input.fifo');
    execFileSync('mkfifo', [fifo]);
    rec = new RecordingDisplays(['alpha', 'beta']);
    events.length = 0;
    pipeline = new InputPipeline(
      { windowMs: 500, ctrlAltDelToVm: true },
      {
        sinkFor: (d) => rec.sinkFor(d),
        leds: new RecordingLedSink(rec.lines),
        // as the menu's owner does in kvmux run
        onMenuOpen: () => {
          rec.lines.push('menu open');
          pipeline.setMenuOpen(true);
        },
        onDirectSwitch: (n) => {
          rec.lines.push(`switch ${n}`);
          pipeline.setMenuOpen(false);
        },
        onCycle: () => pipeline.setMenuOpen(false),
        onMenuInput: (ev) => events.push(`menu ${ev.code}:${ev.value}`),
      },
    );
    pipeline.setActive('alpha');
    rec.take();
    sources = new InputSources({ devices: [fifo] }, pipeline);
    sources.start();
  });

  afterEach(() => {
    sources.close();
    pipeline.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Write with a fresh writer each time: writers come and go, the source must stay. */
  function write(buf: Buffer): void {
    const fd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    try {
      writeSync(fd, buf);
    } finally {
      closeSync(fd);
    }
  }

  it('delivers keys to the active display and survives writers closing (no EOF)', async () => {
    write(keys('a down', 'a up'));
    await expect.poll(() => rec.lines.length).toBe(2);
    write(keys('b down', 'b up'));
    execFileSync('sh', ['-c', `printf '' > ${fifo}`]); // another process opens and closes it
    await expect.poll(() => rec.lines.length).toBe(4);
    expect(rec.take()).toEqual(['to alpha: a down', 'to alpha: a up', 'to alpha: b down', 'to alpha: b up']);
    expect(sources.list()).toEqual([{ path: fifo, kind: 'fifo', name: 'FIFO', grabbed: false }]);
  });

  it('reassembles a record split across two writes', async () => {
    const buf = keys('c down', 'c up');
    write(buf.subarray(0, 10));
    await new Promise((r) => setTimeout(r, 30));
    expect(rec.lines).toEqual([]);
    write(buf.subarray(10));
    await expect.poll(() => rec.take()).toEqual(['to alpha: c down', 'to alpha: c up']);
  });

  it('opens the menu on a double tap: no Scroll Lock reaches any display, later keys go to the menu', async () => {
    write(
      keys('scrolllock down', 'scrolllock up', 'scrolllock down', 'scrolllock up', 'down down', 'down up'),
    );
    await expect.poll(() => events.length).toBe(2);
    expect(rec.take()).toEqual(['menu open']);
    expect(events).toEqual(['menu 108:1', 'menu 108:0']);
  });

  it('replays a single tap once the window has passed (real timer)', async () => {
    const t0 = performance.now();
    write(keys('scrolllock down', 'scrolllock up'));
    await expect.poll(() => rec.lines.length, { timeout: 3000 }).toBe(3);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(490);
    expect(rec.take()).toEqual(['to alpha: scrolllock down', 'leds scrolllock', 'to alpha: scrolllock up']);
  });

  it('swallows a blocked chord: Ctrl+Alt+Backspace reaches nothing but its modifiers', async () => {
    write(
      keys(
        'rightalt down',
        'leftctrl down',
        'backspace down',
        'backspace up',
        'leftctrl up',
        'rightalt up',
        'z down',
        'z up',
      ),
    );
    await expect.poll(() => rec.lines.at(-1)).toBe('to alpha: z up');
    expect(rec.take()).toEqual([
      'to alpha: rightalt down',
      'to alpha: leftctrl down',
      'to alpha: leftctrl up',
      'to alpha: rightalt up',
      'to alpha: z down',
      'to alpha: z up',
    ]);
  });

  it('sends a release to the display that got the press after a switch', async () => {
    write(keys('leftshift down'));
    await expect.poll(() => rec.lines.length).toBe(1);
    pipeline.setActive('beta');
    write(keys('x down', 'leftshift up', 'x up'));
    await expect.poll(() => rec.lines.length).toBe(5);
    expect(rec.take()).toEqual([
      'to alpha: leftshift down',
      'leds none',
      'to beta: x down',
      'to alpha: leftshift up',
      'to beta: x up',
    ]);
  });
});

describe('input source paths that are not usable', () => {
  it('fails at start naming a missing path', () => {
    const s = new InputSources({ devices: ['/nonexistent/kvmux.fifo'] }, { feed: () => {} });
    expect(() => s.start()).toThrow('/nonexistent/kvmux.fifo: cannot use input device: ENOENT');
  });

  it('refuses a regular file', () => {
    const dir = tempDir('kvmux-src-');
    const file = join(dir, 'plain');
    writeFileSync(file, 'x');
    try {
      expect(() => new InputSources({ devices: [file] }, { feed: () => {} }).start()).toThrow(
        `${file}: not an evdev device or FIFO`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
