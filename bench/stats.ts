import { mulberry32 } from '../test/helpers/prng.js';

/** The `q` quantile of sorted values, the one rule of every figure here: the value at floor(q·n). */
const quantile = (sorted: ArrayLike<number>, q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;

/** Percentiles of a sample, in the sample's unit, rounded for JSON. */
export function summarize(
  samples: number[],
  digits = 3,
): { n: number; p50: number; p99: number; max: number; mean: number } {
  const s = [...samples].sort((a, b) => a - b);
  const r = (x: number) => Number(x.toFixed(digits));
  const mean = s.reduce((a, b) => a + b, 0) / Math.max(1, s.length);
  return {
    n: s.length,
    p50: r(quantile(s, 0.5)),
    p99: r(quantile(s, 0.99)),
    max: r(s[s.length - 1] ?? Number.NaN),
    mean: r(mean),
  };
}

/**
 * How far chance alone moves the difference of two samples' `q` quantiles (p99: the 10th largest of
 * 1000, so a few slow trials more or less on one side move it by milliseconds): the 5th and 95th
 * percentiles of that difference over `rounds` bootstrap resamples of both. An interval far wider
 * than the difference says the difference is mostly noise.
 */
export function quantileDiffInterval(a: number[], b: number[], q = 0.99, rounds = 1000, digits = 1) {
  const rnd = mulberry32(0x6b766d); // the same resamples on every run of the same data
  const diffs = new Float64Array(rounds);
  const ra = new Float64Array(a.length);
  const rb = new Float64Array(b.length);
  for (let i = 0; i < rounds; i++) {
    for (let j = 0; j < a.length; j++) ra[j] = a[Math.floor(rnd() * a.length)]!;
    for (let j = 0; j < b.length; j++) rb[j] = b[Math.floor(rnd() * b.length)]!;
    diffs[i] = quantile(ra.sort(), q) - quantile(rb.sort(), q);
  }
  diffs.sort();
  const r = (x: number) => Number(x.toFixed(digits));
  return [r(quantile(diffs, 0.05)), r(quantile(diffs, 0.95))] as const;
}
