import { describe, expect, it } from 'vitest';
import { BackendError, errText } from '../../src/util/errors.js';

describe('errText: one line for logs', () => {
  it.each([
    ['a plain value', 'boom', 'boom'],
    ['an Error', new Error('disk full'), 'disk full'],
    [
      'a chain of causes',
      new BackendError('alpha', 'QMP: cannot connect', {
        cause: Object.assign(new Error('connect ENOENT /x'), { code: 'ENOENT' }),
      }),
      'alpha: QMP: cannot connect (cause: connect ENOENT /x)',
    ],
  ])('%s', (_what, err, text) => expect(errText(err)).toBe(text));
});
