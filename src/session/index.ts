/**
 * src/session: VMs. Config, image discovery, the backends (qemu | command | virtualbox), the QMP
 * client, the pure lifecycle with restart backoff and the supervisor that re-adopts running VMs.
 */
export type { Backend, LaunchContext, VmExit, VmHandle, VmRecord, VmState } from './backends/backend.js';
export { type CommandBackendOptions, createCommandBackend } from './backends/command.js';
export { createQemuBackend, kvmUsable, QEMU_HOST_KEYS, type QemuBackendOptions } from './backends/qemu.js';
export { type Accel, diskFormat, qemuArgv, qemuPaths, resolveAccel } from './backends/qemu-argv.js';
export { createVirtualboxBackend, type VirtualboxBackendOptions } from './backends/virtualbox.js';
export { vboxSetupCommands, vboxStartArgs, vboxStopArgs } from './backends/virtualbox-argv.js';
export {
  bootSector,
  DEMO_PALETTE,
  type DemoDiskOptions,
  demoColourIndex,
  demoDisk,
  writeDemoDisk,
} from './demo-disk.js';
export { allVms, type DiscoveryResult, discoverImages, nameFromFile, sidecarSchema } from './images.js';
export { QmpClient, type QmpEvent } from './qmp.js';
export { type DisplayInfo, Supervisor, type SupervisorOptions, type VmStatus } from './supervisor.js';
export { controlSocketOf, vmDirOf } from './vm-paths.js';
export { VmRecordStore } from './vm-records.js';
export {
  backoffMs,
  DEFAULT_RESTART_POLICY,
  INITIAL_LIFECYCLE,
  type RestartPolicy,
  type VmEvent,
  type VmLifecycle,
  vmTransition,
} from './vm-state.js';
