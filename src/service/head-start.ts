import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { errText } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { markStart } from '../util/start-trace.js';
import { type StartXServerOptions, startXServer, type XServer } from '../x/server.js';

/**
 * `kvmux run`'s head start: the first display's Xvfb is spawned right after the config is read,
 * so it starts (~300 ms) while the rest of kvmux loads (~400 ms of imports), not after. Only where
 * the first display can be told from the config alone; the switcher checks the guess, and a
 * server for a display that turns out not to be first is stopped. Imports nothing heavy (no x11).
 */
export interface HeadStart {
  readonly name: string;
  readonly server: Promise<XServer>;
}

/** The options every display's X server starts with (DisplayRuntime's launch uses them too). */
export function serverBase(config: Pick<Config, 'x' | 'runDir'>) {
  const x = config.x;
  const range: [number, number] = [x.firstDisplay, x.firstDisplay + 79];
  return {
    logDir: join(config.runDir, 'x'),
    width: x.width,
    height: x.height,
    range,
    readyTimeoutMs: x.readySeconds * 1000,
  } satisfies Partial<StartXServerOptions>;
}

/**
 * Pure: the display the switcher will show first (the one remembered, else the first VM in config
 * order) when the configured VMs alone tell it; null when it may be a found image or admin.
 */
export function headStartName(vmNames: readonly string[], remembered: string | null): string | null {
  if (remembered !== null) return vmNames.includes(remembered) ? remembered : null;
  return vmNames[0] ?? null;
}

/** The display an earlier kvmux showed (switcher's active-display file), if any. */
export function rememberedDisplay(stateDir: string): string | null {
  try {
    return readFileSync(join(stateDir, 'active-display'), 'utf8').trim() || null;
  } catch {
    return null;
  }
}

/**
 * Spawn the first display's Xvfb now; null for `console: vt` (its Xorg start takes a VT and the
 * console lock, which the display runtime owns) and when an earlier kvmux left that display's
 * server to adopt (a record in stateDir/displays).
 */
export function startHeadStart(
  config: Pick<Config, 'console' | 'x' | 'runDir' | 'stateDir'>,
  vmNames: readonly string[],
  log: Logger,
): HeadStart | null {
  if (config.console !== 'virtual') return null;
  const name = headStartName(vmNames, rememberedDisplay(config.stateDir));
  if (name === null || existsSync(join(config.stateDir, 'displays', `${name}.json`))) return null;
  markStart(`x-start:${name}`);
  const server = startXServer({ kind: 'xvfb', ...serverBase(config) });
  // its failure is the display's to report (it starts another); never an unhandled rejection
  server.catch((err: unknown) =>
    log.warn({ display: name, err: errText(err) }, 'head-start X server failed'),
  );
  return { name, server };
}

/** Stop a head-start server nobody took (or that failed: nothing to do then). */
export async function dropHeadStart(server: Promise<XServer>): Promise<void> {
  const s = await server.catch(() => null);
  await s?.stop();
}
