import type { VmConfig } from '../../config/schema.js';
import type { JobRecord } from '../jobs/job.js';
import type { QmpClient } from '../qmp.js';

export type VmState = 'stopped' | 'starting' | 'running' | 'stopping' | 'crashed';

/** What a backend needs to launch its VM on a display. */
export interface LaunchContext {
  /** X display string, e.g. ":21". */
  readonly display: string;
  /** runDir/vm/NAME: sockets and logs of this VM (created by the supervisor). */
  readonly vmDir: string;
  /** Screen size of the display, for backends that must be told. */
  readonly width: number;
  readonly height: number;
  /** Tap interfaces created for this VM's NICs, in nics order. */
  readonly taps: ReadonlyArray<{ ifname: string; mac: string }>;
  /** Memory to start with when it differs from the config (a setMemory that could not apply live). */
  readonly memoryMiB?: number;
  /** cgroup.procs files the VM process joins before exec (resources); absent = no cgroup. */
  readonly cgroupProcs?: readonly string[];
  /** Start waiting for a migration stream (QEMU `-incoming defer`) instead of booting: restore, receive. */
  readonly incoming?: boolean;
  /** The guest reset itself (a reboot inside the VM; the process lives on): end its channel session. */
  readonly onGuestReset?: () => void;
  /**
   * The process exists (start() may still wait for it, e.g. for QMP): record it now, so a kvmux
   * dying before start() returns leaves a VM the next one adopts instead of one nobody knows.
   */
  readonly onSpawned?: (record: VmRecord) => void;
}

/** Recorded in stateDir so a restarted kvmux can re-adopt the running VM. */
export interface VmRecord {
  readonly name: string;
  readonly backend: VmConfig['backend'];
  readonly pid: number;
  /** Field 22 of /proc/PID/stat (clock ticks since boot): guards against pid reuse. */
  readonly startTime: number;
  readonly display: string;
  /** e.g. { qmp: ".../qmp.sock", control: ".../control.sock" }. */
  readonly sockets: Readonly<Record<string, string>>;
  /** Memory the VM was started with. */
  readonly memoryMiB?: number;
  /** ISO time the VM was launched (for humans; identity is pid + startTime). */
  readonly startedAt?: string;
  /** A save/restore/migrate/receive in progress: a restarted kvmux finishes or undoes it. */
  readonly job?: JobRecord;
}

/** How a VM process ended: a clean exit (guest powered off, program quit with 0) is not a crash. */
export interface VmExit {
  readonly code: number | null;
  readonly signal: string | null;
  readonly clean: boolean;
}

/** A running VM process as a backend sees it. */
export interface VmHandle {
  readonly pid: number;
  readonly record: VmRecord;
  /** Resolves once when the process is gone (never rejects); adopted processes report code null. */
  readonly exited: Promise<VmExit>;
  /** Graceful stop (ACPI powerdown / SIGTERM) within timeoutMs, then kill; force kills at once. */
  stop(opts: { force: boolean; timeoutMs?: number }): Promise<void>;
  /** Live memory change where the backend can; false when it applies on next start only. */
  setMemory(memoryMiB: number): Promise<boolean>;
  /** Backend-specific run state, e.g. QMP query-status "running"; "unknown" when it cannot tell. */
  status(): Promise<string>;
  /** Drop connections (QMP) without stopping the VM: used at service shutdown for adoption later. */
  detach(): void;
  /** QEMU only: the QMP connection (reconnected when needed), for save and migration jobs. */
  qmp?(): Promise<QmpClient | null>;
}

export interface Backend {
  readonly kind: VmConfig['backend'];
  /** Chords this backend's UI reacts to on the host; the guard swallows them. */
  readonly hostKeys: readonly string[];
  start(vm: VmConfig, ctx: LaunchContext): Promise<VmHandle>;
  /** Re-attach to a VM still running from a previous kvmux; null when it is gone (or a zombie). */
  adopt(vm: VmConfig, record: VmRecord, ctx: LaunchContext): Promise<VmHandle | null>;
}
