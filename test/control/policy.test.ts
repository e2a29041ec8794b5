import { describe, expect, it } from 'vitest';
import { compilePolicy, decide, globMatch, type PolicyRule } from '../../src/control/auth/policy.js';

describe('glob', () => {
  const cases: [string, string, boolean][] = [
    ['*', 'anything.at.all', true],
    ['*', '', true],
    ['vm.*', 'vm.list', true],
    ['vm.*', 'vm.', true],
    ['vm.*', 'vmx.list', false],
    ['vm.*', 'display.list', false],
    ['vm.list', 'vm.list', true],
    ['vm.list', 'vm.listx', false],
    ['vm.list', 'xvm.list', false],
    ['vm.lis?', 'vm.list', true],
    ['vm.lis?', 'vm.lis', false],
    ['*.upload.*', 'image.upload.chunk', true],
    ['image.*', 'image.upload.begin', true],
    ['alpha', 'alpha', true],
    ['alpha', 'Alpha', false],
    ['alpha', 'alpha2', false],
    ['a*', 'alpha', true],
    ['a*', 'beta', false],
    ['(a|b)', 'a', false],
    ['(a|b)', '(a|b)', true],
    ['a+', 'aa', false],
    ['a+', 'a+', true],
    ['[ab]', 'a', false],
    ['^x$', '^x$', true],
    ['*', 'line\nbreak', true],
  ];
  it.each(cases)('%j matches %j: %s', (glob, value, want) => {
    expect(globMatch(glob, value)).toBe(want);
  });
});

describe('policy', () => {
  const rules: PolicyRule[] = [
    { from: 'alpha', method: 'host.*', action: 'ask' },
    { from: 'alpha', method: '*', action: 'allow' },
    { from: '*', method: 'vm.list', action: 'allow' },
    { from: 'beta', method: 'vm.stop', action: 'deny' },
    { from: 'b*', method: 'vm.*', action: 'allow' },
  ];
  const cases: [string, string, string, number | null][] = [
    ['alpha', 'host.update.begin', 'ask', 0],
    ['alpha', 'vm.stop', 'allow', 1],
    ['alpha', 'image.upload.chunk', 'allow', 1],
    ['gamma', 'vm.list', 'allow', 2],
    ['gamma', 'vm.stop', 'deny', null],
    ['gamma', 'host.update.begin', 'deny', null],
    ['beta', 'vm.list', 'allow', 2],
    ['beta', 'vm.stop', 'deny', 3],
    ['beta', 'vm.start', 'allow', 4],
    ['bravo', 'vm.stop', 'allow', 4],
    ['beta', 'display.switch', 'deny', null],
    ['', 'vm.list', 'allow', 2],
  ];
  it.each(cases)('%s calling %s → %s (rule %s)', (vm, method, action, rule) => {
    expect(decide(rules, vm, method)).toEqual({ action, rule });
  });

  it('denies everything with no rules', () => {
    expect(decide([], 'alpha', 'vm.list')).toEqual({ action: 'deny', rule: null });
  });

  it('lets the first matching rule win even when a later one is broader', () => {
    const p = compilePolicy([
      { from: '*', method: '*', action: 'deny' },
      { from: 'alpha', method: '*', action: 'allow' },
    ]);
    expect(p.decide('alpha', 'vm.list').action).toBe('deny');
  });

  it('treats regex characters in rules literally', () => {
    const p = compilePolicy([{ from: 'a.c', method: '*', action: 'allow' }]);
    expect(p.decide('abc', 'x').action).toBe('deny');
    expect(p.decide('a.c', 'x').action).toBe('allow');
  });
});

describe('policy targets', () => {
  const rules: PolicyRule[] = [
    { from: 'alpha', method: 'vm.stop', action: 'allow', target: 'b*' },
    { from: 'alpha', method: 'vm.*', action: 'allow' },
    { from: 'alpha', method: 'display.*', action: 'allow', target: '*' },
    { from: 'gamma', method: 'display.switch', action: 'allow' },
    { from: 'gamma', method: 'vm.restart', action: 'allow', target: 'self' },
    { from: 'gamma', method: 'image.*', action: 'allow' },
  ];
  const cases: [string, string, string | null, string, number | null][] = [
    ['alpha', 'vm.stop', 'beta', 'allow', 0],
    ['alpha', 'vm.stop', 'bravo', 'allow', 0],
    ['alpha', 'vm.stop', 'alpha', 'allow', 1],
    ['alpha', 'vm.stop', 'gamma', 'deny', null],
    ['alpha', 'vm.start', 'beta', 'deny', null],
    ['alpha', 'vm.start', 'alpha', 'allow', 1],
    ['alpha', 'vm.list', null, 'allow', 1],
    // display.switch through a glob rule asks; display.list does not
    ['alpha', 'display.switch', 'beta', 'ask', 2],
    ['alpha', 'display.list', null, 'allow', 2],
    // named exactly: allowed, but only onto itself (display.switch defaults to self)
    ['gamma', 'display.switch', 'gamma', 'allow', 3],
    ['gamma', 'display.switch', 'admin', 'deny', null],
    ['gamma', 'vm.restart', 'gamma', 'allow', 4],
    ['gamma', 'vm.restart', 'alpha', 'deny', null],
    // non-vm methods keep `*` as their default target
    ['gamma', 'image.delete', 'disk.qcow2', 'allow', 5],
  ];
  it.each(cases)('%s calling %s on %s → %s (rule %s)', (vm, method, target, action, rule) => {
    expect(decide(rules, vm, method, target)).toEqual({ action, rule });
  });
});
