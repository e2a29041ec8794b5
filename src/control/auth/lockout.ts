/**
 * Failed-login lockout as a pure state machine: `threshold` failures in a row lock the caller for
 * `lockMs`, and each further lock doubles (capped). A success clears everything. While locked, an
 * attempt is refused before the password is even checked, so guessing costs wall-clock time.
 */
export interface LockoutConfig {
  readonly threshold: number;
  readonly lockMs: number;
  readonly maxLockMs: number;
}

export const defaultLockout: LockoutConfig = { threshold: 5, lockMs: 60_000, maxLockMs: 3_600_000 };

export interface LockoutState {
  readonly failures: number;
  readonly lockedUntilMs: number;
  /** Length of the next lock. */
  readonly nextLockMs: number;
}

export type LockoutEvent = { type: 'attempt' } | { type: 'failure' } | { type: 'success' };

export type LockoutAction =
  | { type: 'allow' }
  | { type: 'refuse'; retryAfterMs: number }
  | { type: 'locked'; untilMs: number; lockMs: number };

export interface LockoutStep {
  state: LockoutState;
  actions: LockoutAction[];
  nextDeadlineMs: number | null;
}

export function initialLockout(cfg: LockoutConfig = defaultLockout): LockoutState {
  return { failures: 0, lockedUntilMs: 0, nextLockMs: cfg.lockMs };
}

type Handler = (cfg: LockoutConfig, s: LockoutState, nowMs: number) => LockoutStep;

const handlers: Record<LockoutEvent['type'], Handler> = {
  attempt: (_cfg, s, nowMs) =>
    nowMs < s.lockedUntilMs
      ? step(s, [{ type: 'refuse', retryAfterMs: s.lockedUntilMs - nowMs }])
      : step(s, [{ type: 'allow' }]),
  failure: (cfg, s, nowMs) => {
    const failures = s.failures + 1;
    if (failures < cfg.threshold) return step({ ...s, failures }, []);
    const untilMs = nowMs + s.nextLockMs;
    const state = {
      failures: 0,
      lockedUntilMs: untilMs,
      nextLockMs: Math.min(cfg.maxLockMs, s.nextLockMs * 2),
    };
    return step(state, [{ type: 'locked', untilMs, lockMs: s.nextLockMs }]);
  },
  success: (cfg) => step(initialLockout(cfg), []),
};

function step(state: LockoutState, actions: LockoutAction[]): LockoutStep {
  return { state, actions, nextDeadlineMs: state.lockedUntilMs > 0 ? state.lockedUntilMs : null };
}

export function lockoutStep(
  cfg: LockoutConfig,
  state: LockoutState,
  event: LockoutEvent,
  nowMs: number,
): LockoutStep {
  return handlers[event.type](cfg, state, nowMs);
}
