import { describe, expect, it } from 'vitest';
import { BufferPool } from '../../src/control/rpc/buffer-pool.js';
import { type FrameEvent, jsonDepth, LineSplitter } from '../../src/control/rpc/framing.js';

const lines = (evs: FrameEvent[]) => evs.map((e) => (e.type === 'line' ? e.line.toString() : `!${e.limit}`));

describe('line splitter', () => {
  it('joins lines split across chunks and splits several in one chunk', () => {
    const s = new LineSplitter(100);
    expect(lines(s.push(Buffer.from('ab')))).toEqual([]);
    expect(lines(s.push(Buffer.from('c\nde\n\nf')))).toEqual(['abc', 'de']);
    expect(lines(s.push(Buffer.from('\n')))).toEqual(['f']);
  });

  it('drops an over-long line whole, reports it once, and resumes at the next newline', () => {
    const s = new LineSplitter(5);
    expect(lines(s.push(Buffer.from('1234')))).toEqual([]);
    expect(lines(s.push(Buffer.from('5678')))).toEqual(['!5']);
    expect(lines(s.push(Buffer.from('9999999')))).toEqual([]);
    expect(lines(s.push(Buffer.from('9\nok\n')))).toEqual(['ok']);
  });

  it('accepts a line of exactly the limit', () => {
    expect(lines(new LineSplitter(3).push(Buffer.from('abc\n')))).toEqual(['abc']);
  });
});

describe('binary attachments (#bin N)', () => {
  const withBin = (evs: FrameEvent[]) =>
    evs.map((e) =>
      e.type === 'line'
        ? `${e.line.toString()}${e.binary ? `+${e.binary.toString('hex')}` : ''}`
        : `!${e.limit}`,
    );
  const frame = Buffer.concat([
    Buffer.from('#bin 4\n'),
    Buffer.from([0x0a, 0x00, 0x23, 0xff]), // raw bytes may hold newlines and '#'
    Buffer.from('{"id":1}\nplain\n'),
  ]);

  it('hands the raw bytes to the next line, however the stream is cut', () => {
    for (let cut = 0; cut <= frame.length; cut++) {
      const s = new LineSplitter(100);
      const evs = [...s.push(frame.subarray(0, cut)), ...s.push(frame.subarray(cut))];
      expect(withBin(evs), `cut at ${cut}`).toEqual(['{"id":1}+0a0023ff', 'plain']);
    }
  });

  it('byte by byte too, and an empty attachment is allowed', () => {
    const s = new LineSplitter(100);
    const evs: FrameEvent[] = [];
    for (const b of Buffer.concat([frame, Buffer.from('#bin 0\nx\n')])) evs.push(...s.push(Buffer.from([b])));
    expect(withBin(evs)).toEqual(['{"id":1}+0a0023ff', 'plain', 'x+']);
  });

  it('drops an attachment over the limit, reports it, and stays in step', () => {
    const s = new LineSplitter(3);
    const evs = s.push(Buffer.from('#bin 5\n\n\n\n\n\nok\n'));
    expect(withBin(evs)).toEqual(['!3', 'ok']);
  });

  it('leaves lines that only look like a header alone', () => {
    const s = new LineSplitter(100);
    expect(withBin(s.push(Buffer.from('#bin x\n#bin 12345678901\n#binary 3\n')))).toEqual([
      '#bin x',
      '#bin 12345678901',
      '#binary 3',
    ]);
  });
});

describe('a reader that reuses its buffer (reusedChunks)', () => {
  it('keeps a line that spans reads intact when the reader overwrites its buffer', () => {
    const s = new LineSplitter(100, { reusedChunks: true });
    const buf = Buffer.alloc(8);
    const read = (text: string) => {
      buf.fill(0x58); // what the next read leaves in the reused buffer
      buf.write(text);
      return s.push(buf.subarray(0, text.length));
    };
    expect(lines(read('{"a":'))).toEqual([]);
    expect(lines(read('12345'))).toEqual([]);
    expect(lines(read('}\n{"b"'))).toEqual(['{"a":12345}']);
    expect(lines(read(':2}\n'))).toEqual(['{"b":2}']);
  });
});

describe('attachments from a pool', () => {
  it('fills a pooled buffer, and gives back one that no line claimed', () => {
    const pool = new BufferPool(1 << 20, 4, { minSharedBytes: 0 }); // slabs of 4 bytes
    const s = new LineSplitter(100, { pool });
    const [ev] = s.push(Buffer.from('#bin 3\nabc{"id":1}\n'));
    expect(ev?.type === 'line' && ev.binary?.toString()).toBe('abc');
    if (ev?.type === 'line' && ev.binary) pool.give(ev.binary);
    expect(pool.bytesFree).toBe(4);
    // taken again for the next attachment; a second header supersedes it unread: back it goes,
    // and serves the next one (one slab in all, none free)
    s.push(Buffer.from('#bin 3\nxyz#bin 2\nuv'));
    expect([pool.bytesShared, pool.bytesFree]).toEqual([4, 0]);
    const [last] = s.push(Buffer.from('{"id":2}\n'));
    expect(last?.type === 'line' && last.binary?.toString()).toBe('uv');
  });
});

describe('json depth', () => {
  const cases: [string, number][] = [
    ['1', 0],
    ['{}', 1],
    ['{"a":[1,{"b":[]}]}', 4],
    ['"[[[[[["', 0],
    ['{"a":"\\"[[[["}', 1],
    ['{"a":"\\\\"}', 1],
    ['["\\\\\\"[[" , [[]]]', 3],
    ['[[[[', 4],
  ];
  it.each(cases)('%s has depth %i', (text, depth) => {
    expect(jsonDepth(Buffer.from(text))).toBe(depth);
  });

  it('stops early past the limit', () => {
    expect(jsonDepth(Buffer.from('['.repeat(1_000_000)), 32)).toBe(33);
  });
});

describe('leadingId (over-rate lines: the id without a parse)', async () => {
  const { leadingId } = await import('../../src/control/rpc/connection.js');
  it.each([
    ['{"jsonrpc":"2.0","id":7,"method":"x"}', 7],
    ['{"jsonrpc":"2.0","id":"abc","method":"x"}', 'abc'],
    ['{ "id" : -3, "jsonrpc":"2.0"}', -3],
    ['{"method":"x","id":7}', undefined],
    ['{"jsonrpc":"2.0","id":"a\\"b"}', undefined],
    ['[[[[', undefined],
    ['not json', undefined],
  ])('%s → %j', (line, want) => {
    expect(leadingId(Buffer.from(line))).toBe(want);
  });
});

describe('reading an attachment in place (readTarget / landed)', () => {
  it('offers the rest of an attachment, mixed freely with copied pieces, and hands it whole to its line', () => {
    const data = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
    const s = new LineSplitter(1000);
    expect(s.readTarget(10)).toBeNull(); // no attachment under way
    expect(s.push(Buffer.concat([Buffer.from('#bin 100\n'), data.subarray(0, 7)]))).toEqual([]);
    let t = s.readTarget(10);
    expect(t?.length).toBe(93);
    data.copy(t!, 0, 7, 40); // a read that filled part of it
    s.landed(33);
    expect(s.push(data.subarray(40, 45))).toEqual([]); // then a copied piece
    t = s.readTarget(10);
    expect(t?.length).toBe(55);
    data.copy(t!, 0, 45);
    s.landed(55);
    expect(s.readTarget(10)).toBeNull(); // complete: the line comes through the buffer again
    const [ev] = s.push(Buffer.from('{"id":1}\n'));
    expect(ev?.type === 'line' && ev.binary?.equals(data)).toBe(true);
  });

  it('offers nothing for a small rest, nor for an attachment being dropped', () => {
    const s = new LineSplitter(50);
    s.push(Buffer.from('#bin 20\n'));
    expect(s.readTarget(21)).toBeNull();
    expect(s.readTarget(20)?.length).toBe(20);
    const over = new LineSplitter(50);
    over.push(Buffer.from('#bin 60\n'));
    expect(over.readTarget(1)).toBeNull();
  });

  it('refuses a landing larger than what is owed (the reader broke its promise)', () => {
    const s = new LineSplitter(50);
    s.push(Buffer.from('#bin 20\n'));
    expect(() => s.landed(21)).toThrow(/owed/);
  });
});
