/** Percentiles of a sample, in the sample's unit, rounded for JSON. */
export function summarize(
  samples: number[],
  digits = 3,
): { n: number; p50: number; p99: number; max: number; mean: number } {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
  const r = (x: number) => Number(x.toFixed(digits));
  const mean = s.reduce((a, b) => a + b, 0) / Math.max(1, s.length);
  return {
    n: s.length,
    p50: r(at(0.5)),
    p99: r(at(0.99)),
    max: r(s[s.length - 1] ?? Number.NaN),
    mean: r(mean),
  };
}
