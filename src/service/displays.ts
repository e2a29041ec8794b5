/**
 * Pure bookkeeping of the displays kvmux shows: one per VM in config order, then `admin`.
 * Which display is active, which VT and X display each has, and what a switch must do.
 */
export interface DisplayEntry {
  readonly name: string;
  readonly kind: 'vm' | 'admin';
  /** X display string, ":21"; empty until its server is up. */
  readonly display: string;
  readonly vt: number | null;
}

export interface DisplayTable {
  readonly entries: readonly DisplayEntry[];
  readonly active: string | null;
}

export type SwitchPlan =
  | { ok: true; table: DisplayTable; target: DisplayEntry; vt: number | null; changed: boolean }
  | { ok: false; reason: 'unknown' | 'not-ready'; name: string };

export function emptyTable(): DisplayTable {
  return { entries: [], active: null };
}

/** Entries in menu order: VMs in config order, admin last. */
export function setEntries(table: DisplayTable, entries: readonly DisplayEntry[]): DisplayTable {
  const vms = entries.filter((e) => e.kind === 'vm');
  const admin = entries.filter((e) => e.kind === 'admin');
  const ordered = [...vms, ...admin];
  const active = ordered.some((e) => e.name === table.active) ? table.active : null;
  return { entries: ordered, active };
}

export function upsertEntry(table: DisplayTable, entry: DisplayEntry): DisplayTable {
  const exists = table.entries.some((e) => e.name === entry.name);
  const entries = exists
    ? table.entries.map((e) => (e.name === entry.name ? entry : e))
    : [...table.entries, entry];
  return setEntries(table, entries);
}

export function removeEntry(table: DisplayTable, name: string): DisplayTable {
  return setEntries(
    table,
    table.entries.filter((e) => e.name !== name),
  );
}

export function planSwitch(table: DisplayTable, name: string): SwitchPlan {
  const target = table.entries.find((e) => e.name === name);
  if (!target) return { ok: false, reason: 'unknown', name };
  if (!target.display) return { ok: false, reason: 'not-ready', name };
  return {
    ok: true,
    table: { ...table, active: name },
    target,
    vt: target.vt,
    changed: table.active !== name,
  };
}

/** `ScrLk ScrLk <digit>`: 1-based position in menu order; 0 means the tenth. */
export function nameAtIndex(table: DisplayTable, index: number): string | undefined {
  const i = index === 0 ? 9 : index - 1;
  return table.entries[i]?.name;
}

/** The contract's `display.list` rows. */
export function listDisplays(
  table: DisplayTable,
): Array<{ name: string; display: string; vt: number | null; active: boolean }> {
  return table.entries.map((e) => ({
    name: e.name,
    display: e.display,
    vt: e.vt,
    active: e.name === table.active,
  }));
}
