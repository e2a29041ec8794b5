/**
 * Guest-channel policy, in the spirit of Qubes qrexec: an ordered list of rules, the first rule whose
 * `from` (VM name), `method` and `target` match decides; no match means deny. Pure: no I/O, no clock.
 *
 * The target of a call is the VM or display it names (`params.name`). A rule's `target` is `self`
 * (the calling VM), a name or a glob; without one, vm.* methods and display.switch mean `self`, so
 * `{from: alpha, method: "vm.*", action: allow}` lets alpha stop alpha and nothing else.
 */
export type PolicyAction = 'allow' | 'deny' | 'ask';

export interface PolicyRule {
  readonly from: string;
  readonly method: string;
  readonly action: PolicyAction;
  /** `self`, a VM/display name or a glob; default `self` for vm.* and display.switch, else `*`. */
  readonly target?: string | undefined;
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

/** Methods whose rules mean the caller itself unless they say otherwise. */
export function selfByDefault(method: string): boolean {
  return method.startsWith('vm.') || method === 'display.switch';
}

/** The target a call names: its `name` param when that is a string, else none. */
export function targetOf(params: unknown): string | null {
  if (params === null || typeof params !== 'object' || Array.isArray(params)) return null;
  const name = (params as Record<string, unknown>)['name'];
  return typeof name === 'string' ? name : null;
}

/**
 * Switching displays pulls the physical keyboard away from whoever is typing, so a guest's
 * display.switch asks the console unless a rule names that method exactly (no glob) to allow it.
 */
const ASK_UNLESS_EXPLICIT = new Set(['display.switch']);

export interface CompiledPolicy {
  readonly rules: readonly PolicyRule[];
  /** `target`: what the call names (see targetOf); null when it names nothing. */
  decide(vm: string, method: string, target?: string | null): PolicyDecision;
}

/** Compile the globs once; `decide` is then a plain scan. */
export function compilePolicy(rules: readonly PolicyRule[]): CompiledPolicy {
  const compiled = rules.map((r) => ({
    from: globToRegExp(r.from),
    method: globToRegExp(r.method),
    target: r.target === undefined || r.target === 'self' ? null : globToRegExp(r.target),
    self: r.target === 'self',
    explicitMethod: !/[*?]/.test(r.method),
    action: r.action,
  }));
  type Rule = (typeof compiled)[number];
  const targetOk = (r: Rule, vm: string, method: string, target: string | null) => {
    if (target === null) return true;
    if (r.self || (r.target === null && selfByDefault(method))) return target === vm;
    return r.target === null || r.target.test(target);
  };
  return {
    rules,
    decide(vm, method, target = null) {
      const i = compiled.findIndex(
        (r) => r.from.test(vm) && r.method.test(method) && targetOk(r, vm, method, target),
      );
      if (i < 0) return { action: 'deny', rule: null };
      const r = compiled[i]!;
      const action =
        r.action === 'allow' && ASK_UNLESS_EXPLICIT.has(method) && !r.explicitMethod ? 'ask' : r.action;
      return { action, rule: i };
    },
  };
}

export function decide(
  rules: readonly PolicyRule[],
  vm: string,
  method: string,
  target: string | null = null,
): PolicyDecision {
  return compilePolicy(rules).decide(vm, method, target);
}
