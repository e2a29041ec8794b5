/**
 * Start-up milestones of `kvmux run` in ms since the process started (Node's performance.now()),
 * logged as one `start timeline` line: where "service start → first VM on screen" goes. Steps are
 * named `what:display` (`x-ready:alpha`); only the first time of each is kept (a restart later is
 * not start-up).
 */
const marks = new Map<string, number>();

export function markStart(step: string): void {
  if (!marks.has(step)) marks.set(step, Number(performance.now().toFixed(1)));
}

/** Every milestone so far, in the order reached. */
export function startMarks(): Record<string, number> {
  return Object.fromEntries(marks);
}
