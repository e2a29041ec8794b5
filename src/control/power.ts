import { z } from 'zod';
import { RpcCode, RpcError } from '../util/errors.js';
import { execa } from '../util/lazy-execa.js';
import { type Logger, silentLogger } from '../util/log.js';
import { defineMethod, type RpcMethod } from './rpc/method.js';
import { type HostUpdateView, slotStatus } from './transfer/host-update.js';

export type PowerAction = 'reboot' | 'poweroff';

export interface PowerOptions {
  /** Carries the action out; default `systemctl reboot|poweroff` (systemd stops kvmux first). */
  act?: (action: PowerAction) => Promise<void>;
  /** Delay before acting, so the reply reaches the caller first (default 1000 ms). */
  delayMs?: number;
  /** The A/B view of host.update, for host.update.apply. */
  update: HostUpdateView;
  log?: Logger;
}

const defaultAct = async (action: PowerAction) => {
  await execa('systemctl', [action]);
};

const params = z.strictObject({ delaySeconds: z.number().int().min(0).max(3600).optional() });

/**
 * host.reboot, host.shutdown and host.update.apply. They are ordinary methods, so the policy decides
 * who may call them (a guest needs an allow or `ask` rule; `ask` puts the confirmation on the
 * physical screen) and the audit log records them. The action runs after the reply is sent.
 */
export function powerMethods(opts: PowerOptions): RpcMethod[] {
  const log = opts.log ?? silentLogger;
  const act = opts.act ?? defaultAct;
  let pending: PowerAction | null = null;
  const schedule = (action: PowerAction, delaySeconds: number | undefined, why: Record<string, unknown>) => {
    if (pending) throw new RpcError(RpcCode.conflict, `a ${pending} is already under way`);
    pending = action;
    const ms = delaySeconds !== undefined ? delaySeconds * 1000 : (opts.delayMs ?? 1000);
    log.warn({ action, inMs: ms, ...why }, 'host power action scheduled');
    setTimeout(() => {
      act(action).catch((err: unknown) => {
        pending = null;
        log.error({ action, err: String(err) }, 'host power action failed');
      });
    }, ms).unref();
    return { action, inSeconds: ms / 1000 };
  };
  return [
    defineMethod({
      name: 'host.reboot',
      params,
      summary: 'reboot the host (VMs are shut down first)',
      handler: (p, ctx) => schedule('reboot', p.delaySeconds, { caller: ctx.caller }),
    }),
    defineMethod({
      name: 'host.shutdown',
      params,
      summary: 'power the host off (VMs are shut down first)',
      handler: (p, ctx) => schedule('poweroff', p.delaySeconds, { caller: ctx.caller }),
    }),
    defineMethod({
      name: 'host.update.apply',
      params,
      summary: 'reboot into the staged slot (refused when nothing valid is staged)',
      async handler(p, ctx) {
        const { bootDir, current, next } = await opts.update.pointers();
        if (next === current)
          throw new RpcError(
            RpcCode.conflict,
            `nothing staged: the next boot is slot ${next}, the running one`,
          );
        const st = await slotStatus(bootDir, next);
        if (!st.valid)
          throw new RpcError(RpcCode.conflict, `slot ${next} is not valid: ${st.reason ?? 'unknown'}`);
        return {
          ...schedule('reboot', p.delaySeconds, { caller: ctx.caller, from: current, to: next }),
          slot: next,
        };
      },
    }),
  ];
}
