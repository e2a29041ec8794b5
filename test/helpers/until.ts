/**
 * Polls `fn` until it gives a value (anything but undefined) and returns it; throws
 * "timed out: WHAT" after `timeoutMs`. For the slow e2e waits (a guest's serial log, a job's end).
 */
export async function untilValue<T>(
  what: string,
  fn: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 60_000,
  pollMs = 100,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
