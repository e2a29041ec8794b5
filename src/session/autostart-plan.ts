/**
 * Which VMs start at service start, and in what order. Pure: no I/O, no clock.
 * The VM on the display shown first leads, alone: every X server and QEMU started beside it takes
 * CPU it needs to reach the screen (start → first VM on screen is the figure people feel).
 */
export interface AutostartCandidate {
  readonly name: string;
  readonly autostart: boolean;
  /** Only a stopped VM is started (an adopted one already runs). */
  readonly state: string;
}

export interface AutostartPlan {
  /** Started first and alone; null when the shown display's VM does not autostart (or is not a VM). */
  readonly lead: string | null;
  /** The others that autostart, in config order, after the lead. */
  readonly rest: string[];
}

export function autostartPlan(vms: readonly AutostartCandidate[], shown: string | null): AutostartPlan {
  const due = vms.filter((v) => v.autostart && v.state === 'stopped').map((v) => v.name);
  const lead = shown !== null && due.includes(shown) ? shown : null;
  return { lead, rest: due.filter((n) => n !== lead) };
}
