import { writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { EV } from '../../src/input/codes.js';
import { EvdevDevice } from '../../src/input/evdev.js';
import { decodeEvent, encodeEvent, INPUT_EVENT_SIZE, type InputEvent } from '../../src/input/event.js';
import { assertPollable, devMajor, FdEventReader } from '../../src/input/fd-reader.js';
import { ioctlBuffer } from '../../src/input/libc.js';
import { RecordSplitter } from '../../src/input/record-splitter.js';
import { DeviceError } from '../../src/util/errors.js';
import { openRawPty, type Pty } from './pty.js';

function records(n: number): Buffer {
  const buf = Buffer.alloc(n * INPUT_EVENT_SIZE);
  for (let i = 0; i < n; i++)
    encodeEvent(
      { type: EV.KEY, code: 30 + (i % 20), value: i % 2, timeMs: 1000 + i },
      buf,
      i * INPUT_EVENT_SIZE,
    );
  return buf;
}

describe('record splitter', () => {
  it.each([1, 5, 23, 24, 25, 47, 1000])('reassembles records cut into %i-byte pieces', (piece) => {
    const data = records(50);
    const got: InputEvent[] = [];
    const s = new RecordSplitter();
    for (let off = 0; off < data.length; off += piece)
      s.push(data.subarray(off, off + piece), '/x', (ev) => got.push(ev));
    expect(got).toHaveLength(50);
    expect(got[49]).toEqual({ type: EV.KEY, code: 30 + (49 % 20), value: 1, timeMs: 1049, source: '/x' });
    expect(s.pendingBytes).toBe(0);
  });
});

describe('reading input_event records from a real character device (pty)', () => {
  let pty: Pty | undefined;
  afterEach(() => {
    pty?.close();
    pty = undefined;
  });

  it('delivers every record through libuv poll and nonblocking reads, partial writes included', async () => {
    pty = openRawPty();
    const got: InputEvent[] = [];
    const reader = new FdEventReader(
      pty.slavePath,
      pty.master,
      {
        onEvent: (ev) => got.push(ev),
        onError: (e) => {
          throw e;
        },
      },
      false,
    );
    reader.start();
    const data = records(300);
    writeSync(pty.slave, data, 0, 100);
    await new Promise((r) => setTimeout(r, 20));
    writeSync(pty.slave, data, 100, data.length - 100);
    await expect.poll(() => got.length, { timeout: 5000 }).toBe(300);
    expect(got.map((e) => e.timeMs)).toEqual(Array.from({ length: 300 }, (_, i) => 1000 + i));
    reader.close();
  });

  it('never parks a thread-pool worker: with more idle readers than workers, fs work still completes', async () => {
    const ptys = Array.from({ length: 6 }, () => openRawPty());
    const readers = ptys.map(
      (p) => new FdEventReader(p.slavePath, p.master, { onEvent: () => {}, onError: () => {} }, false),
    );
    try {
      for (const r of readers) r.start();
      // libuv's pool has 4 workers by default: blocking reads there would leave none for readFile.
      const text = await Promise.race([
        readFile('/proc/self/status', 'utf8'),
        new Promise<string>((_, reject) => setTimeout(() => reject(new Error('thread pool starved')), 3000)),
      ]);
      expect(text).toContain('Name:');
    } finally {
      for (const r of readers) r.close();
      for (const p of ptys) p.close();
    }
  });

  it('makes real ioctls through koffi: TIOCGWINSZ fills the buffer in place', () => {
    pty = openRawPty();
    const set = Buffer.alloc(8);
    set.writeUInt16LE(33, 0);
    set.writeUInt16LE(101, 2);
    ioctlBuffer(pty.master, 0x5414, set); // TIOCSWINSZ
    const got = Buffer.alloc(8);
    ioctlBuffer(pty.master, 0x5413, got); // TIOCGWINSZ
    expect([got.readUInt16LE(0), got.readUInt16LE(2)]).toEqual([33, 101]);
  });

  it('names the device and the errno when an evdev ioctl fails (a pty is not evdev)', () => {
    pty = openRawPty();
    expect(() => EvdevDevice.open(pty!.slavePath)).toThrow(`${pty.slavePath}: EVIOCGNAME failed: ENOTTY`);
  });
});

describe('refusing what cannot be polled', () => {
  it('refuses /dev/null before koffi would abort the process on it', () => {
    expect(() => EvdevDevice.open('/dev/null')).toThrow(DeviceError);
    expect(() => EvdevDevice.open('/dev/null')).toThrow('/dev/null: EVIOCGNAME failed: ENOTTY');
  });

  it('says which device cannot be polled and why', async () => {
    const { openSync, closeSync } = await import('node:fs');
    const fd = openSync('/dev/null', 'r');
    try {
      expect(() => assertPollable('/dev/null', fd)).toThrow(
        /\/dev\/null: not an input device, FIFO or pty \(major 1\)/,
      );
    } finally {
      closeSync(fd);
    }
  });

  it('reports a missing device by path', () => {
    expect(() => EvdevDevice.open('/dev/input/event99')).toThrow('/dev/input/event99: open failed: ENOENT');
  });

  it('decodes major numbers the glibc way', () => {
    expect(devMajor(0x0d40)).toBe(13);
    expect(devMajor(0x8800)).toBe(136);
  });
});

describe('struct input_event encoding', () => {
  it.each([0, 1.5, 1_700_000_000_123.456, 2 ** 33 * 1000 + 7])('round-trips time %d ms', (timeMs) => {
    const ev = decodeEvent(encodeEvent({ type: 1, code: 70, value: -2, timeMs }));
    expect(ev.timeMs).toBeCloseTo(timeMs, 3);
    expect([ev.type, ev.code, ev.value]).toEqual([1, 70, -2]);
  });
});
