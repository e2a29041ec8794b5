import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { controlSocketOf } from '../session/vm-paths.js';
import { type Logger, silentLogger } from '../util/log.js';
import { openAuditLog } from './auth/audit.js';
import { fileAuthenticator, passwdPath } from './auth/auth.js';
import { coreMethods } from './core-methods.js';
import { attachGuestChannel, type GuestChannel } from './guest-channel.js';
import { type PowerAction, powerMethods } from './power.js';
import type { ConfirmFn, ControlLimits } from './rpc/core.js';
import type { RpcMethod } from './rpc/method.js';
import { type ControlServer, createControlServer } from './rpc/server.js';
import { imageDownloadMethods } from './transfer/download.js';
import { hostUpdateMethods, hostUpdateView, SLOTS, slotDir } from './transfer/host-update.js';
import type { ImageUser } from './transfer/image-files.js';
import { imageMethods } from './transfer/image-methods.js';
import { SpaceLedger } from './transfer/space-ledger.js';
import { imageUploadMethods, sweepStaleUploads } from './transfer/upload.js';

/**
 * The whole control plane from a config: local socket, password, policy, audit, the methods this
 * folder owns, and one guest channel per VM with `guestChannel: true`. The service adds its own
 * methods (vm.*, display.*, menu.*) with `server.register`.
 */
export interface ControlPlaneHooks {
  /** Answers `ask` rules; wire to the overlay prompt only the physical keyboard can answer. */
  confirm?: ConfirmFn;
  /** After an image upload commits: wire to image discovery. */
  onImageAdded?: (path: string) => void | Promise<void>;
  /** True when a running VM uses this disk image: uploads may not replace it then. */
  imageInUse?: (path: string) => boolean | Promise<boolean>;
  /** The VMs that use an image (real path): image.list, image.delete, image.download. */
  imageUsers?: (realPath: string) => ImageUser[];
  /** After image.delete or image.import: rescan the image folders. */
  onImagesChanged?: () => void | Promise<void>;
  /** Extra rows (vm.list, display.switch, …); more can be added later with `server.register`. */
  methods?: readonly RpcMethod[];
  log?: Logger;
  limits?: Partial<ControlLimits>;
  /** Carries out host.reboot/host.shutdown/host.update.apply; default systemctl (tests inject). */
  power?: (action: PowerAction) => Promise<void>;
  /** A transfer's chunk is being called (uploads, downloads, host updates; socket or guest). */
  onBulk?: () => void;
}

export interface ControlPlane {
  readonly server: ControlServer;
  readonly socketPath: string;
  /** Start (or restart) the guest channel of `vm`; idempotent. */
  attachVm(vm: string): GuestChannel;
  /** Stop the guest channel of `vm` (VM removed). */
  detachVm(vm: string): void;
  /** End `vm`'s session now (e.g. the supervisor restarted it); the channel reconnects. */
  resetVm(vm: string): void;
  /** Apply a reloaded config's policy. */
  setConfig(cfg: Config): void;
  close(): Promise<void>;
}

export async function startControlPlane(
  initial: Config,
  hooks: ControlPlaneHooks = {},
): Promise<ControlPlane> {
  let cfg = initial;
  const log = hooks.log ?? silentLogger;
  const audit = await openAuditLog(cfg.stateDir, {
    maxFileBytes: cfg.audit.maxFileMiB << 20,
    keepFiles: cfg.audit.keepFiles,
  });
  const server = createControlServer({
    policy: cfg.policy,
    authenticator: fileAuthenticator(passwdPath(cfg.stateDir)),
    audit,
    log,
    ...(hooks.confirm ? { confirm: hooks.confirm } : {}),
    ...(hooks.onBulk ? { onBulk: hooks.onBulk } : {}),
    // the channel's backstop answers a little after the console dialog's own timeout
    limits: { confirmTimeoutMs: (cfg.menu.askTimeoutSeconds + 10) * 1000, ...hooks.limits },
  });
  // a crash or power cut mid-upload leaves temp files that no session owns any more
  await sweepStaleUploads([...cfg.imageDirs, ...SLOTS.map((s) => slotDir(cfg.hostUpdate.bootDir, s))], log);
  const ledger = new SpaceLedger();
  const images = {
    imageDirs: () => cfg.imageDirs,
    stateDir: () => cfg.stateDir,
    imageDefaults: () => cfg.imageDefaults,
    idleMs: () => cfg.imageDefaults.transferIdleSeconds * 1000,
    ledger,
    log,
    ...(hooks.imageUsers ? { users: hooks.imageUsers } : {}),
  };
  server.register([
    ...coreMethods({ audit, methods: () => server.methods.keys() }),
    ...imageUploadMethods({
      ...images,
      ...(hooks.onImageAdded ? { onImageAdded: hooks.onImageAdded } : {}),
      ...(hooks.imageInUse ? { inUse: hooks.imageInUse } : {}),
    }),
    ...imageDownloadMethods(images),
    ...imageMethods({
      ...images,
      ...(hooks.onImagesChanged ? { onImagesChanged: hooks.onImagesChanged } : {}),
    }),
    ...hostUpdateMethods({ bootDir: () => cfg.hostUpdate.bootDir, idleMs: images.idleMs, log }),
    ...powerMethods({
      update: hostUpdateView({ bootDir: () => cfg.hostUpdate.bootDir }),
      log,
      ...(hooks.power ? { act: hooks.power } : {}),
    }),
    ...(hooks.methods ?? []),
  ]);
  const socketPath = join(cfg.runDir, 'control.sock');
  await server.listen(socketPath);
  const channels = new Map<string, GuestChannel>();
  const attachVm = (vm: string) => {
    const existing = channels.get(vm);
    if (existing) return existing;
    const ch = attachGuestChannel(server, { vm, path: controlSocketOf(cfg.runDir, vm), log });
    channels.set(vm, ch);
    return ch;
  };
  for (const vm of cfg.vms) if (vm.guestChannel) attachVm(vm.name);
  return {
    server,
    socketPath,
    attachVm,
    detachVm(vm) {
      channels.get(vm)?.close();
      channels.delete(vm);
    },
    resetVm(vm) {
      channels.get(vm)?.reset();
    },
    setConfig(next) {
      cfg = next;
      server.setPolicy(next.policy);
    },
    async close() {
      for (const ch of channels.values()) ch.close();
      channels.clear();
      await server.close();
    },
  };
}
