import type { VmState } from './backends/backend.js';

/**
 * Pure lifecycle of one VM: (state, event, nowMs) → {state, actions, nextDeadlineMs}. Crashes restart
 * with exponential backoff; after `maxCrashes` within `windowMs` it gives up (state crashed, gaveUp).
 * No I/O and no clock: the supervisor performs the actions and feeds the time in.
 */
export interface RestartPolicy {
  readonly baseMs: number;
  readonly maxMs: number;
  readonly maxCrashes: number;
  readonly windowMs: number;
  /** A clean exit restarts too, with the same backoff (a screen that must always be there). */
  readonly restartCleanExits?: boolean;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  baseMs: 1000,
  maxMs: 60_000,
  maxCrashes: 5,
  windowMs: 120_000,
};

export interface VmLifecycle {
  readonly state: VmState;
  /** Times of recent crashes (within the policy window). */
  readonly crashes: readonly number[];
  readonly gaveUp: boolean;
  /** When a crashed VM is due to be relaunched; null when none is planned. */
  readonly retryAtMs: number | null;
  /** Start again once the current stop completes (restart). */
  readonly restartAfterStop: boolean;
}

export type VmEvent =
  | { type: 'start' }
  | { type: 'stop'; force: boolean }
  | { type: 'restart' }
  | { type: 'launched' }
  | { type: 'launch-failed' }
  | { type: 'adopted' }
  | { type: 'exited'; clean: boolean }
  | { type: 'tick' };

export type VmAction = { type: 'launch' } | { type: 'terminate'; force: boolean };

export interface VmStep {
  readonly state: VmLifecycle;
  readonly actions: readonly VmAction[];
  readonly nextDeadlineMs: number | null;
}

export const INITIAL_LIFECYCLE: VmLifecycle = {
  state: 'stopped',
  crashes: [],
  gaveUp: false,
  retryAtMs: null,
  restartAfterStop: false,
};

/** Delay before relaunch after the n-th crash in the window (n ≥ 1): base, 2·base, 4·base … max. */
export function backoffMs(n: number, policy: RestartPolicy): number {
  return Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, n - 1));
}

const step = (state: VmLifecycle, actions: VmAction[] = []): VmStep => ({
  state,
  actions,
  nextDeadlineMs: state.retryAtMs,
});

function launch(s: VmLifecycle): VmStep {
  return step({ ...s, state: 'starting', retryAtMs: null, restartAfterStop: false }, [{ type: 'launch' }]);
}

function crashed(s: VmLifecycle, now: number, policy: RestartPolicy): VmStep {
  const crashes = [...s.crashes.filter((t) => now - t < policy.windowMs), now];
  if (crashes.length >= policy.maxCrashes)
    return step({ ...s, state: 'crashed', crashes, gaveUp: true, retryAtMs: null, restartAfterStop: false });
  const retryAtMs = now + backoffMs(crashes.length, policy);
  return step({ ...s, state: 'crashed', crashes, gaveUp: false, retryAtMs, restartAfterStop: false });
}

type Handler = (s: VmLifecycle, ev: VmEvent, now: number, policy: RestartPolicy) => VmStep;

const HANDLERS: Readonly<Record<VmEvent['type'], Handler>> = {
  // A person asking to start forgives earlier crashes.
  start: (s) =>
    s.state === 'stopped' || s.state === 'crashed' ? launch({ ...s, crashes: [], gaveUp: false }) : step(s),
  stop: (s, ev) => {
    const force = ev.type === 'stop' && ev.force;
    if (s.state === 'running' || s.state === 'starting' || (s.state === 'stopping' && force))
      return step({ ...s, state: 'stopping', retryAtMs: null, restartAfterStop: false }, [
        { type: 'terminate', force },
      ]);
    if (s.state === 'crashed') return step({ ...s, state: 'stopped', retryAtMs: null, gaveUp: false });
    return step(s);
  },
  restart: (s) => {
    if (s.state === 'running' || s.state === 'starting')
      return step({ ...s, state: 'stopping', retryAtMs: null, restartAfterStop: true }, [
        { type: 'terminate', force: false },
      ]);
    if (s.state === 'stopping') return step({ ...s, restartAfterStop: true });
    return launch({ ...s, crashes: [], gaveUp: false });
  },
  launched: (s) => (s.state === 'starting' ? step({ ...s, state: 'running' }) : step(s)),
  adopted: (s) => step({ ...s, state: 'running', retryAtMs: null }),
  'launch-failed': (s, _ev, now, policy) => (s.state === 'starting' ? crashed(s, now, policy) : step(s)),
  exited: (s, ev, now, policy) => {
    if (s.state === 'stopping') return s.restartAfterStop ? launch(s) : step({ ...s, state: 'stopped' });
    if (s.state !== 'running' && s.state !== 'starting') return step(s);
    // The guest powered itself off (QEMU exits 0): that is a stop, not a crash.
    if (ev.type === 'exited' && ev.clean && !policy.restartCleanExits)
      return step({ ...s, state: 'stopped', retryAtMs: null });
    return crashed(s, now, policy);
  },
  tick: (s, _ev, now) =>
    s.state === 'crashed' && s.retryAtMs !== null && now >= s.retryAtMs ? launch(s) : step(s),
};

export function vmTransition(
  s: VmLifecycle,
  ev: VmEvent,
  nowMs: number,
  policy: RestartPolicy = DEFAULT_RESTART_POLICY,
): VmStep {
  return HANDLERS[ev.type](s, ev, nowMs, policy);
}
