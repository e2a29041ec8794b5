import { z } from 'zod';
import { nameSchema, resourcesSchema } from '../config/schema.js';
import { defineMethod, type RpcMethod } from '../control/rpc/method.js';
import { channelSchema } from '../session/jobs/job.js';
import { migrationKeySchema } from '../session/jobs/stream-key.js';
import type { Supervisor } from '../session/supervisor.js';
import { BackendError, RpcCode, RpcError } from '../util/errors.js';
import type { VmCatalogue } from './vm-catalogue.js';

/**
 * vm.setResources / vm.resources (cgroup limits, kept in kvmux's config layer) and the QEMU jobs on
 * its own migration stream: vm.save / vm.restore (a gzip file in stateDir), vm.migrate / vm.receive
 * (between two kvmux hosts over tcp: or unix:).
 */
const byName = z.strictObject({ name: nameSchema });

async function onVm<T>(sup: Supervisor, name: string, fn: () => Promise<T> | T): Promise<T> {
  if (!sup.has(name)) throw new RpcError(RpcCode.notFound, `no VM named "${name}"`);
  try {
    return await fn();
  } catch (err) {
    if (err instanceof BackendError) throw new RpcError(RpcCode.conflict, err.message);
    throw err;
  }
}

export function jobMethods(supervisor: Supervisor, catalogue: VmCatalogue): RpcMethod[] {
  return [
    defineMethod({
      name: 'vm.setResources',
      params: resourcesSchema.extend({ name: nameSchema }),
      summary:
        'CPU quota (CPUs), cpuset, memoryMaxMiB, ioWeight: replaces the limits, live on a running VM (live: true), kept across restarts; {} removes them',
      handler: ({ name, ...r }) => onVm(supervisor, name, () => catalogue.setResources(name, r)),
    }),
    defineMethod({
      name: 'vm.resources',
      params: byName,
      summary:
        'configured limits, what the kernel enforces now (read back from the cgroup) and the cgroup mode',
      handler: (p) =>
        onVm(supervisor, p.name, () => ({
          name: p.name,
          configured: supervisor.get(p.name).resources ?? {},
          applied: supervisor.appliedResources(p.name),
          cgroup: supervisor.cgroupMode,
        })),
    }),
    defineMethod({
      name: 'vm.hibernate',
      params: byName,
      summary:
        'freeze every process of a running VM or subhost (cgroup freezer; mounts, netns, memory kept); vm.start wakes it',
      handler: (p) => onVm(supervisor, p.name, () => supervisor.hibernate(p.name)),
    }),
    defineMethod({
      name: 'vm.save',
      background: true,
      params: byName,
      summary: 'QEMU: pause, stream the state to a gzip file in stateDir (disks stamped), stop the VM',
      handler: (p) => onVm(supervisor, p.name, () => supervisor.save(p.name)),
    }),
    defineMethod({
      name: 'vm.restore',
      background: true,
      params: byName,
      summary: 'QEMU: start a saved VM from its saved state (refused when its disk changed since)',
      handler: (p) => onVm(supervisor, p.name, () => supervisor.restore(p.name)),
    }),
    defineMethod({
      name: 'vm.migrate',
      background: true,
      params: byName.extend({ to: channelSchema, key: migrationKeySchema.optional() }),
      summary:
        'QEMU: live-migrate to a kvmux receiving on `to` (tcp:HOST:PORT | unix:PATH), with `key` over TLS ' +
        'only to a receiver holding the same key; progress in vm.list job',
      handler: (p) => onVm(supervisor, p.name, () => supervisor.migrate(p.name, p.to, p.key)),
    }),
    defineMethod({
      name: 'vm.receive',
      params: byName.extend({ from: channelSchema, key: migrationKeySchema.optional() }),
      summary:
        'QEMU: start the (stopped) VM waiting for a migration on `from`; it runs once the stream is in. ' +
        'With `key` (16-128 printable characters, the same at both ends) only that sender is taken',
      handler: (p) => onVm(supervisor, p.name, () => supervisor.receive(p.name, p.from, p.key)),
    }),
  ];
}
