import { describe, expect, it } from 'vitest';
import { keyCode } from '../../src/input/codes.js';
import { type AskAction, askStep, askText, initialAsk, summarizeParams } from '../../src/menu/ask.js';

const req = (id: string, from = 'alpha') => ({ id, from, method: 'vm.stop', params: { name: 'beta' } });
const key = (name: string, value = 1) => ({ kind: 'key' as const, code: keyCode(name)!, value });
const show = (a: AskAction) =>
  a.kind === 'answer'
    ? `${a.id} ${a.allow ? 'allow' : 'deny'} (${a.why})`
    : a.kind === 'show'
      ? `show ${a.request.id}`
      : 'hide';

describe('ask confirmation model', () => {
  it('words the question with the caller, method and params', () => {
    expect(askText(req('1'))).toEqual({
      question: 'VM alpha asks to call vm.stop',
      details: ['  name: beta'],
      hint: 'Enter allow  \xb7  Esc deny',
    });
    expect(summarizeParams({ name: 'b', force: true })).toBe('{name: b, force: true}');
    expect(summarizeParams(undefined)).toBe('');
    expect(summarizeParams({ data: 'x'.repeat(300) })).toMatch(/\.\.\.\(300 chars\)}$/);
  });

  it('shows a request and sets a deadline', () => {
    const r = askStep(initialAsk(1000), { kind: 'ask', request: req('1') }, 500);
    expect(r.actions.map(show)).toEqual(['show 1']);
    expect(r.nextDeadlineMs).toBe(1500);
  });

  it.each([
    ['enter', 'allow (enter)'],
    ['kpenter', 'allow (enter)'],
    ['esc', 'deny (escape)'],
  ])('%s answers', (k, outcome) => {
    const s = askStep(initialAsk(), { kind: 'ask', request: req('1') }, 0).state;
    const r = askStep(s, key(k), 10);
    expect(r.actions.map(show)).toEqual([`1 ${outcome}`, 'hide']);
    expect(r.state.current).toBeNull();
    expect(r.nextDeadlineMs).toBeNull();
  });

  it('ignores releases, autorepeat and other keys', () => {
    const s = askStep(initialAsk(), { kind: 'ask', request: req('1') }, 0).state;
    for (const ev of [key('enter', 0), key('enter', 2), key('y'), key('esc', 2)]) {
      expect(askStep(s, ev, 1).actions).toEqual([]);
    }
  });

  it('denies on timeout, and not before', () => {
    const s = askStep(initialAsk(1000), { kind: 'ask', request: req('1') }, 0).state;
    expect(askStep(s, { kind: 'tick' }, 999).actions).toEqual([]);
    expect(askStep(s, { kind: 'tick' }, 1000).actions.map(show)).toEqual(['1 deny (timeout)', 'hide']);
  });

  it('queues a second request and shows it after the first is answered', () => {
    let s = askStep(initialAsk(1000), { kind: 'ask', request: req('1') }, 0).state;
    const r2 = askStep(s, { kind: 'ask', request: req('2', 'beta') }, 100);
    expect(r2.actions).toEqual([]);
    s = r2.state;
    const r3 = askStep(s, key('enter'), 200);
    expect(r3.actions.map(show)).toEqual(['1 allow (enter)', 'show 2']);
    expect(r3.nextDeadlineMs).toBe(1200);
    expect(askStep(r3.state, key('esc'), 300).actions.map(show)).toEqual(['2 deny (escape)', 'hide']);
  });

  it('a cancelled request is denied, whether shown or queued', () => {
    let s = askStep(initialAsk(), { kind: 'ask', request: req('1') }, 0).state;
    s = askStep(s, { kind: 'ask', request: req('2', 'beta') }, 0).state;
    const queued = askStep(s, { kind: 'cancel', id: '2' }, 1);
    expect(queued.actions.map(show)).toEqual(['2 deny (cancelled)']);
    const shown = askStep(queued.state, { kind: 'cancel', id: '1' }, 2);
    expect(shown.actions.map(show)).toEqual(['1 deny (cancelled)', 'hide']);
    expect(askStep(shown.state, { kind: 'cancel', id: '9' }, 3).actions).toEqual([]);
  });

  it('keys with nothing pending do nothing', () => {
    expect(askStep(initialAsk(), key('enter'), 0).actions).toEqual([]);
  });

  it('shows every param, wrapped, however long the one before it is', () => {
    const t = askText({
      id: '1',
      from: 'alpha',
      method: 'image.upload.begin',
      params: { name: `${'a'.repeat(500)}.qcow2`, size: 1, sha256: 'f'.repeat(64), replace: true },
    });
    expect(t.details.every((l) => l.length <= 72)).toBe(true);
    expect(t.details).toContain('  replace: true');
    expect(t.details.join('')).toContain('(506 chars)');
  });

  it('refuses a second question from the same VM at once, shown or queued', () => {
    let s = askStep(initialAsk(), { kind: 'ask', request: req('1') }, 0).state;
    expect(askStep(s, { kind: 'ask', request: req('2') }, 1).actions.map(show)).toEqual(['2 deny (busy)']);
    s = askStep(s, { kind: 'ask', request: req('3', 'beta') }, 1).state;
    expect(askStep(s, { kind: 'ask', request: req('4', 'beta') }, 1).actions.map(show)).toEqual([
      '4 deny (busy)',
    ]);
  });

  it('refuses a denied VM during the cooldown (Esc or timeout), not after it, and not after an allow', () => {
    let s = askStep(initialAsk(1000, 5000), { kind: 'ask', request: req('1') }, 0).state;
    s = askStep(s, key('esc'), 10).state;
    expect(askStep(s, { kind: 'ask', request: req('2') }, 5009).actions.map(show)).toEqual([
      '2 deny (cooldown)',
    ]);
    expect(askStep(s, { kind: 'ask', request: req('2', 'beta') }, 20).actions.map(show)).toEqual(['show 2']);
    s = askStep(s, { kind: 'ask', request: req('3') }, 5010).state;
    s = askStep(s, { kind: 'tick' }, 6010).state;
    expect(askStep(s, { kind: 'ask', request: req('4') }, 6020).actions.map(show)).toEqual([
      '4 deny (cooldown)',
    ]);
    s = askStep(s, { kind: 'ask', request: req('5', 'beta') }, 6020).state;
    s = askStep(s, key('enter'), 6030).state;
    expect(askStep(s, { kind: 'ask', request: req('6', 'beta') }, 6040).actions.map(show)).toEqual([
      'show 6',
    ]);
  });

  it('waits behind the menu: pause hides it and ignores keys, resume shows it again', () => {
    let s = askStep(initialAsk(1000), { kind: 'ask', request: req('1') }, 0).state;
    const paused = askStep(s, { kind: 'pause' }, 10);
    expect(paused.actions.map(show)).toEqual(['hide']);
    s = paused.state;
    expect(askStep(s, key('enter'), 20).actions).toEqual([]);
    // a question arriving behind the menu is not shown either
    s = askStep(s, { kind: 'ask', request: req('2', 'beta') }, 30).state;
    expect(askStep(s, { kind: 'resume' }, 40).actions.map(show)).toEqual(['show 1']);
    // its deadline kept running behind the menu
    const timedOut = askStep(s, { kind: 'tick' }, 1000);
    expect(timedOut.actions.map(show)).toEqual(['1 deny (timeout)']);
    expect(askStep(timedOut.state, { kind: 'resume' }, 1001).actions.map(show)).toEqual(['show 2']);
  });
});
