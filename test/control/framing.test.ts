import { describe, expect, it } from 'vitest';
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
