import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import { nameSchema, type VmConfig } from '../config/schema.js';
import { defineMethod, type RpcMethod } from '../control/rpc/method.js';
import type { VmStatus } from '../session/supervisor.js';
import { BackendError, RpcCode, RpcError } from '../util/errors.js';
import { checkGuestMemory } from './memory-bounds.js';

/** What the service's own RPC rows need from it; the Service implements this. */
export interface ServiceApi {
  status(): Record<string, unknown>;
  displays(): Array<{ name: string; display: string; vt: number | null; active: boolean }>;
  switchTo(name: string): Promise<{ name: string; vt: number | null; ms: number; vtMs: number }>;
  screenshot(name: string, path: string): Promise<{ path: string; width: number; height: number }>;
  menuState(): { open: boolean; items: string[]; selected: string | null };
  vms(): VmStatus[];
  hasVm(name: string): boolean;
  startVm(name: string): Promise<VmStatus>;
  stopVm(name: string, force: boolean): Promise<VmStatus>;
  restartVm(name: string): Promise<VmStatus>;
  setMemory(name: string, memoryMiB: number): Promise<{ live: boolean; memoryMiB: number }>;
  /** The VM's config, for limits on what a guest may ask (memory bounds). */
  vmConfig(name: string): VmConfig | undefined;
  logTail(lines: number): unknown[];
  screenshotDir: string;
}

const byName = z.strictObject({ name: z.string().min(1).max(64) });

function needVm(api: ServiceApi, name: string): void {
  if (!api.hasVm(name)) throw new RpcError(RpcCode.notFound, `no VM named "${name}"`);
}

/** A backend failure (VM did not start, ...) is the caller's answer, not an internal error. */
async function vmCall<T>(api: ServiceApi, name: string, fn: () => Promise<T>): Promise<T> {
  needVm(api, name);
  try {
    return await fn();
  } catch (err) {
    if (err instanceof BackendError) throw new RpcError(RpcCode.conflict, err.message);
    throw err;
  }
}

/** The contract's display/vm/menu/service rows: name → zod schema → handler. */
export function serviceMethods(api: ServiceApi): RpcMethod[] {
  return [
    defineMethod({
      name: 'service.status',
      params: z.strictObject({}),
      summary: 'version, uptime, console mode, active display, VM counts',
      handler: () => api.status(),
    }),
    defineMethod({
      name: 'service.log',
      params: z.strictObject({ lines: z.number().int().min(1).max(2000).default(100) }),
      summary: 'the last N service log lines (JSON objects), oldest first',
      handler: (p) => api.logTail(p.lines),
    }),
    defineMethod({
      name: 'display.list',
      params: z.strictObject({}),
      summary: 'every display: name, X display, VT, active',
      handler: () => api.displays(),
    }),
    defineMethod({
      name: 'display.switch',
      params: byName,
      summary: 'show a display: VT switch (console vt) and input follows',
      async handler(p) {
        if (!api.displays().some((d) => d.name === p.name))
          throw new RpcError(RpcCode.notFound, `no display named "${p.name}"`);
        return api.switchTo(p.name);
      },
    }),
    defineMethod({
      name: 'display.screenshot',
      params: z.strictObject({
        name: z.string().min(1).max(64),
        path: z.string().min(1).max(4096).optional(),
      }),
      summary: 'PNG of a display; guests may not choose the path',
      async handler(p, ctx) {
        if (!api.displays().some((d) => d.name === p.name))
          throw new RpcError(RpcCode.notFound, `no display named "${p.name}"`);
        if (p.path !== undefined && ctx.caller.kind === 'guest')
          throw new RpcError(RpcCode.forbidden, 'a guest cannot choose where the host writes files');
        if (p.path !== undefined && !isAbsolute(p.path))
          throw new RpcError(RpcCode.invalidParams, `path must be absolute, got "${p.path}"`);
        const path = p.path ?? join(api.screenshotDir, `${p.name}-${Date.now()}.png`);
        return api.screenshot(p.name, path);
      },
    }),
    defineMethod({
      name: 'menu.state',
      params: z.strictObject({}),
      summary: 'the switcher menu: open, items (names, menu order), selected (name)',
      handler: () => api.menuState(),
    }),
    defineMethod({
      name: 'vm.list',
      params: z.strictObject({}),
      summary: 'every VM: name, backend, state, pid, memoryMiB (+ display, crashes, gaveUp)',
      handler: () => api.vms(),
    }),
    defineMethod({
      name: 'vm.start',
      params: byName,
      summary: 'start a VM and wait until it runs',
      handler: (p) => vmCall(api, p.name, () => api.startVm(p.name)),
    }),
    defineMethod({
      name: 'vm.stop',
      params: byName.extend({ force: z.boolean().default(false) }),
      summary: 'graceful ACPI shutdown (then kill after the timeout); force: kill now',
      handler: (p) => vmCall(api, p.name, () => api.stopVm(p.name, p.force)),
    }),
    defineMethod({
      name: 'vm.restart',
      params: byName,
      summary: 'stop (graceful) and start again',
      handler: (p) => vmCall(api, p.name, () => api.restartVm(p.name)),
    }),
    defineMethod({
      name: 'vm.setMemory',
      params: z.strictObject({
        name: nameSchema,
        memoryMiB: z
          .number()
          .int()
          .min(16)
          .max(1 << 22),
      }),
      summary: 'change memory: live where the backend can (live: true), else on next start',
      handler: (p, ctx) =>
        vmCall(api, p.name, () => {
          if (ctx.caller.kind === 'guest') checkGuestMemory(p.name, p.memoryMiB, api.vmConfig(p.name));
          return api.setMemory(p.name, p.memoryMiB);
        }),
    }),
  ];
}
