import { release } from 'node:os';

/** This kernel's major.minor as one comparable number (6.12 → 612); 0 when unreadable. */
export function kernelVersion(): number {
  const m = /^(\d+)\.(\d+)/.exec(release());
  return m ? Number(m[1]) * 100 + Number(m[2]) : 0;
}

/**
 * EEVDF custom slices (sched_attr.sched_runtime for a normal task) came in Linux 6.12. Decided
 * from the version, not by the code under test: a regression that wrongly says ENOTSUP must fail
 * there, not skip.
 */
export const kernelHasSlices = () => kernelVersion() >= 612;
