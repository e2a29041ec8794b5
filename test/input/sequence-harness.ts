import {
  ABS,
  EV,
  KEY_DOWN,
  KEY_REPEAT,
  KEY_UP,
  keyCode,
  keyName,
  REL,
  SYN_REPORT,
} from '../../src/input/codes.js';
import type { InputEvent } from '../../src/input/event.js';
import { InputPipeline, type PipelineClock } from '../../src/input/pipeline.js';
import { RecordingDisplays, RecordingLedSink } from '../../src/input/recording-sink.js';

/**
 * Runs a `.keys` sequence (keyd's test format): `@` settings, input lines, a blank line, then the
 * expected output lines. The pipeline runs for real on a virtual clock (`120ms` lines advance it).
 */
export interface Sequence {
  readonly settings: ReadonlyMap<string, string>;
  readonly input: readonly string[];
  readonly expected: readonly string[];
}

export function parseSequence(text: string): Sequence {
  const settings = new Map<string, string>();
  const input: string[] = [];
  const expected: string[] = [];
  let section: string[] = input;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\s+#.*$/, '').trim();
    if (line.startsWith('#')) continue;
    if (line === '') {
      if (section === input && input.length > 0) section = expected;
      continue;
    }
    const m = /^@(\S+)\s*(.*)$/.exec(line);
    if (m && section === input) settings.set(m[1]!, m[2]!);
    else section.push(line);
  }
  return { settings, input, expected };
}

/** A virtual clock: timers fire only when a time line advances it. */
export class VirtualClock implements PipelineClock {
  private t = 1000;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private nextId = 1;

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  }

  clearTimer(handle: unknown): void {
    this.timers = this.timers.filter((x) => x.id !== handle);
  }

  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const due = this.timers[0];
      if (!due || due.at > end) break;
      this.timers.shift();
      this.t = due.at;
      due.fn();
    }
    this.t = end;
  }
}

const VALUES: Readonly<Record<string, number>> = { down: KEY_DOWN, up: KEY_UP, repeat: KEY_REPEAT };

function describe(ev: InputEvent): string {
  if (ev.type === EV.KEY)
    return `${keyName(ev.code)} ${Object.keys(VALUES).find((k) => VALUES[k] === ev.value)}`;
  return `type ${ev.type} code ${ev.code} value ${ev.value}`;
}

export function runSequence(seq: Sequence): string[] {
  const displays = (seq.settings.get('displays') ?? 'alpha beta').split(/\s+/);
  const rec = new RecordingDisplays(displays);
  const clock = new VirtualClock();
  const blocked = seq.settings.get('blocked');
  let active = 0;
  const pipeline: InputPipeline = new InputPipeline(
    {
      windowMs: Number(seq.settings.get('window') ?? 500),
      ctrlAltDelToVm: seq.settings.get('ctrlAltDelToVm') !== 'false',
      ...(seq.settings.has('hotkey') ? { hotkey: seq.settings.get('hotkey')! } : {}),
      ...(seq.settings.has('next') ? { nextKey: seq.settings.get('next')! } : {}),
      ...(seq.settings.has('previous') ? { prevKey: seq.settings.get('previous')! } : {}),
      ...(blocked !== undefined ? { blocked: blocked.split(/[\s,]+/).filter(Boolean) } : {}),
    },
    {
      sinkFor: (d) => rec.sinkFor(d),
      leds: new RecordingLedSink(rec.lines),
      // the menu's owner (MenuController in kvmux run) captures input at once and frees it on a switch
      onMenuOpen: () => {
        rec.lines.push('menu open');
        pipeline.setMenuOpen(true);
      },
      onDirectSwitch: (n) => {
        rec.lines.push(`switch ${n}`);
        pipeline.setMenuOpen(false);
        const target = displays[n - 1];
        if (target) {
          active = n - 1;
          pipeline.setActive(target);
        }
      },
      onCycle: (delta) => {
        rec.lines.push(delta > 0 ? 'next' : 'previous');
        pipeline.setMenuOpen(false);
        active = (active + delta + displays.length) % displays.length;
        pipeline.setActive(displays[active]!);
      },
      onMenuInput: (ev) => rec.lines.push(`menu: ${describe(ev)}`),
      onMenuPointer: (p) =>
        rec.lines.push(
          p.kind === 'move'
            ? `menu: pointer move ${p.dx} ${p.dy}`
            : `menu: pointer abs ${p.fx.toFixed(3)} ${p.fy.toFixed(3)}`,
        ),
    },
    clock,
  );
  pipeline.setActive(displays[0]!);
  rec.take(); // the initial LED mirror is not part of any sequence
  const feed = (type: number, code: number, value: number) =>
    pipeline.feed({ type, code, value, timeMs: clock.now() });
  const syn = () => feed(EV.SYN, SYN_REPORT, 0);
  for (const line of seq.input) runLine(line, { pipeline, clock, feed, syn });
  return rec.take();
}

interface Ctx {
  pipeline: InputPipeline;
  clock: VirtualClock;
  feed(type: number, code: number, value: number): void;
  syn(): void;
}

/** Events of one kernel report, then its SYN_REPORT. */
function report(ctx: Ctx, ...evs: [number, number, string | undefined][]): void {
  for (const [type, code, value] of evs) ctx.feed(type, code, Number(value));
  ctx.syn();
}

type LineHandler = (args: string[], ctx: Ctx) => void;

const COMMANDS: ReadonlyMap<string, LineHandler> = new Map<string, LineHandler>([
  ['active', ([d], c) => c.pipeline.setActive(d!)],
  ['close', (_args, c) => c.pipeline.close()],
  [
    'padrange',
    ([min, max], c) => {
      const r = { min: Number(min), max: Number(max) };
      c.pipeline.setAbsRange('', r, r, true);
    },
  ],
  ['msc', (_args, c) => report(c, [EV.MSC, 4, '458778'])],
  ['menu', ([what], c) => c.pipeline.setMenuOpen(what === 'open')],
  ['extra', ([d, chords], c) => c.pipeline.setExtraBlocked(d!, (chords ?? '').split(',').filter(Boolean))],
  ['rel', ([x, y], c) => report(c, [EV.REL, REL.X, x], [EV.REL, REL.Y, y])],
  ['wheel', ([n], c) => report(c, [EV.REL, REL.WHEEL, n])],
  ['hwheel', ([n], c) => report(c, [EV.REL, REL.HWHEEL, n])],
  ['abs', ([x, y], c) => report(c, [EV.ABS, ABS.X, x], [EV.ABS, ABS.Y, y])],
  ['absx', ([x], c) => report(c, [EV.ABS, ABS.X, x])],
  [
    'absrange',
    ([min, max], c) =>
      c.pipeline.setAbsRange(
        '',
        { min: Number(min), max: Number(max) },
        { min: Number(min), max: Number(max) },
      ),
  ],
]);

function runLine(line: string, ctx: Ctx): void {
  const [head, ...args] = line.split(/\s+/);
  const time = /^(\d+)ms$/.exec(head!);
  const cmd = COMMANDS.get(head!);
  if (time) ctx.clock.advance(Number(time[1]));
  else if (cmd) cmd(args, ctx);
  else runKey(line, head!, args[0], ctx);
}

function runKey(line: string, head: string, what: string | undefined, ctx: Ctx): void {
  const code = keyCode(head);
  const value = VALUES[what ?? ''];
  if (code === undefined || value === undefined) throw new Error(`sequence line "${line}": not understood`);
  ctx.feed(EV.KEY, code, value);
  ctx.syn();
}

/** keyd-style report: both sides in full, then the first differing line. */
export function diffReport(expected: readonly string[], output: readonly string[]): string {
  const n = Math.max(expected.length, output.length);
  let first = -1;
  for (let i = 0; i < n && first < 0; i++) if (expected[i] !== output[i]) first = i;
  if (first < 0) return '';
  return [
    'Expected:',
    ...expected.map((l, i) => `${i === first ? '>' : ' '} ${l}`),
    'Output:',
    ...output.map((l, i) => `${i === first ? '>' : ' '} ${l}`),
    `first difference at line ${first + 1}: expected "${expected[first] ?? '(end)'}", got "${output[first] ?? '(end)'}"`,
  ].join('\n');
}
