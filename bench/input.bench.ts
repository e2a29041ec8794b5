import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EV, SYN_REPORT } from '../src/input/codes.js';
import { encodeEvent, INPUT_EVENT_SIZE, type InputEvent } from '../src/input/event.js';
import { InputPipeline, type PipelineOutputs } from '../src/input/pipeline.js';
import type { DisplaySink } from '../src/input/sink.js';
import { InputSources } from '../src/input/sources.js';
import { summarize } from './stats.js';

/**
 * Input pipeline figures: throughput from a real FIFO (written by another process) through
 * hotkey, guard and router into a counting sink, with loss counted; and the cost of one feed().
 */
const LETTERS = [30, 31, 32, 33, 34, 35, 36, 37, 38, 44, 45, 46, 47, 48, 49, 50]; // a..l, z..m

/** `pairs` key taps (down+SYN, up+SYN): 4 records each. */
function tapRecords(pairs: number): Buffer {
  const buf = Buffer.alloc(pairs * 4 * INPUT_EVENT_SIZE);
  let off = 0;
  const put = (type: number, code: number, value: number) => {
    encodeEvent({ type, code, value }, buf, off);
    off += INPUT_EVENT_SIZE;
  };
  for (let i = 0; i < pairs; i++) {
    const code = LETTERS[i % LETTERS.length]!;
    put(EV.KEY, code, 1);
    put(EV.SYN, SYN_REPORT, 0);
    put(EV.KEY, code, 0);
    put(EV.SYN, SYN_REPORT, 0);
  }
  return buf;
}

class CountingSink implements DisplaySink {
  keys = 0;
  flushes = 0;
  key(): void {
    this.keys++;
  }
  button(): void {}
  moveRelative(): void {}
  moveAbsolute(): void {}
  flush(): void {
    this.flushes++;
  }
}

function outputs(sink: CountingSink): PipelineOutputs {
  return {
    sinkFor: () => sink,
    onMenuOpen: () => {},
    onDirectSwitch: () => {},
    onCycle: () => {},
    onMenuInput: () => {},
  };
}

async function fifoThroughput(pairs: number) {
  const dir = mkdtempSync(join(tmpdir(), 'kvmux-bench-input-'));
  const fifo = join(dir, 'in.fifo');
  const data = join(dir, 'events.bin');
  execFileSync('mkfifo', [fifo]);
  const records = tapRecords(pairs);
  writeFileSync(data, records);
  const sink = new CountingSink();
  const pipeline = new InputPipeline({ windowMs: 500, ctrlAltDelToVm: true }, outputs(sink));
  pipeline.setActive('bench');
  const recordsIn = records.length / INPUT_EVENT_SIZE;
  let fed = 0;
  let first = 0;
  let last = 0;
  let finish: () => void = () => {};
  const done = new Promise<void>((r) => {
    finish = r;
  });
  const sources = new InputSources(
    { devices: [fifo] },
    {
      feed: (ev: InputEvent) => {
        if (fed === 0) first = performance.now();
        fed++;
        pipeline.feed(ev);
        if (fed === recordsIn) {
          last = performance.now();
          finish();
        }
      },
    },
  );
  sources.start();
  const writer = spawn('sh', ['-c', `cat "${data}" > "${fifo}"`], { stdio: 'ignore' });
  const timeout = setTimeout(finish, 30_000);
  await done;
  clearTimeout(timeout);
  await new Promise((r) => (writer.exitCode !== null ? r(null) : writer.once('exit', r)));
  sources.close();
  pipeline.close();
  rmSync(dir, { recursive: true, force: true });
  const seconds = ((last || performance.now()) - first) / 1000;
  return {
    recordsWritten: recordsIn,
    recordsRead: fed,
    keyEventsIn: pairs * 2,
    keyEventsOut: sink.keys,
    lost: pairs * 2 - sink.keys + (recordsIn - fed),
    seconds: Number(seconds.toFixed(4)),
    eventsPerSecond: Math.round(fed / seconds),
    keyEventsPerSecond: Math.round(sink.keys / seconds),
    goalEventsPerSecond: 100_000,
  };
}

function perEventCost(pairs: number) {
  const sink = new CountingSink();
  const pipeline = new InputPipeline({ windowMs: 500, ctrlAltDelToVm: true }, outputs(sink));
  pipeline.setActive('bench');
  const evs: InputEvent[] = [];
  for (let i = 0; i < pairs; i++) {
    const code = LETTERS[i % LETTERS.length]!;
    evs.push(
      { type: EV.KEY, code, value: 1, timeMs: 0 },
      { type: EV.SYN, code: SYN_REPORT, value: 0, timeMs: 0 },
    );
    evs.push(
      { type: EV.KEY, code, value: 0, timeMs: 0 },
      { type: EV.SYN, code: SYN_REPORT, value: 0, timeMs: 0 },
    );
  }
  for (const ev of evs.slice(0, 20_000)) pipeline.feed(ev); // warm-up
  const micros: number[] = [];
  for (const ev of evs) {
    const t0 = process.hrtime.bigint();
    pipeline.feed(ev);
    micros.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  pipeline.close();
  return { ...summarize(micros), unit: 'µs per feed()' };
}

/** One key at a time: write a record into the FIFO, time until the sink gets the key (poll wake-up + pipeline). */
export async function fifoLatency(samples: number, raw?: number[]) {
  const dir = mkdtempSync(join(tmpdir(), 'kvmux-bench-lat-'));
  const fifo = join(dir, 'in.fifo');
  execFileSync('mkfifo', [fifo]);
  let got: (() => void) | undefined;
  const sink = new CountingSink();
  sink.key = () => {
    sink.keys++;
    got?.();
  };
  const pipeline = new InputPipeline({ windowMs: 500, ctrlAltDelToVm: true }, outputs(sink));
  pipeline.setActive('bench');
  const sources = new InputSources({ devices: [fifo] }, pipeline);
  sources.start();
  const fd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
  const micros: number[] = [];
  const rec = Buffer.alloc(2 * INPUT_EVENT_SIZE);
  for (let i = 0; i < samples; i++) {
    encodeEvent({ type: EV.KEY, code: 30, value: i % 2 === 0 ? 1 : 0 }, rec, 0);
    encodeEvent({ type: EV.SYN, code: SYN_REPORT, value: 0 }, rec, INPUT_EVENT_SIZE);
    const arrived = new Promise<void>((r) => {
      got = r;
    });
    const t0 = performance.now();
    writeSync(fd, rec);
    await arrived;
    micros.push((performance.now() - t0) * 1000);
  }
  closeSync(fd);
  sources.close();
  pipeline.close();
  rmSync(dir, { recursive: true, force: true });
  raw?.push(...micros);
  return { ...summarize(micros), unit: 'µs from FIFO write to sink.key()' };
}

export async function run(): Promise<Record<string, unknown>> {
  const throughput = await fifoThroughput(100_000);
  const cost = perEventCost(50_000);
  const latency = await fifoLatency(2000);
  return { fifoThroughput: throughput, perEventCost: cost, fifoToSinkLatency: latency };
}
