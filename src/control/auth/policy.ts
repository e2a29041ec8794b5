/**
 * Guest-channel policy, in the spirit of Qubes qrexec: an ordered list of rules, the first rule whose
 * `from` (VM name) and `method` globs both match decides; no match means deny. Pure: no I/O, no clock.
 */
export type PolicyAction = 'allow' | 'deny' | 'ask';

export interface PolicyRule {
  readonly from: string;
  readonly method: string;
  readonly action: PolicyAction;
}

export interface PolicyDecision {
  readonly action: PolicyAction;
  /** Index of the rule that decided, or null for the default deny. */
  readonly rule: number | null;
}

/** Shell-style glob: `*` any run of characters (dots included), `?` one character; all else literal. */
export function globToRegExp(glob: string): RegExp {
  const body = [...glob]
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[\\^$.|+()[\]{}]/g, '\\$&')))
    .join('');
  return new RegExp(`^${body}$`, 's');
}

export function globMatch(glob: string, value: string): boolean {
  return globToRegExp(glob).test(value);
}

export interface CompiledPolicy {
  readonly rules: readonly PolicyRule[];
  decide(vm: string, method: string): PolicyDecision;
}

/** Compile the globs once; `decide` is then a plain scan. */
export function compilePolicy(rules: readonly PolicyRule[]): CompiledPolicy {
  const compiled = rules.map((r) => ({
    from: globToRegExp(r.from),
    method: globToRegExp(r.method),
    action: r.action,
  }));
  return {
    rules,
    decide(vm, method) {
      const i = compiled.findIndex((r) => r.from.test(vm) && r.method.test(method));
      return i < 0 ? { action: 'deny', rule: null } : { action: compiled[i]!.action, rule: i };
    },
  };
}

export function decide(rules: readonly PolicyRule[], vm: string, method: string): PolicyDecision {
  return compilePolicy(rules).decide(vm, method);
}
