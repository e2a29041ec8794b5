/** Token bucket for per-channel request rates. Pure: the caller passes the clock. */
export interface RateConfig {
  /** Sustained requests per second. */
  readonly perSecond: number;
  /** Requests allowed in one burst. */
  readonly burst: number;
}

export interface RateState {
  readonly tokens: number;
  readonly atMs: number;
}

export function initialRate(cfg: RateConfig, nowMs: number): RateState {
  return { tokens: cfg.burst, atMs: nowMs };
}

/** Take one token; `allowed` false leaves the bucket empty-but-refilling. */
export function takeToken(
  cfg: RateConfig,
  s: RateState,
  nowMs: number,
): { state: RateState; allowed: boolean } {
  const refilled = Math.min(cfg.burst, s.tokens + ((nowMs - s.atMs) / 1000) * cfg.perSecond);
  if (refilled < 1) return { state: { tokens: refilled, atMs: nowMs }, allowed: false };
  return { state: { tokens: refilled - 1, atMs: nowMs }, allowed: true };
}
