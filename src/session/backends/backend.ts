import type { VmConfig } from '../config-schema.js';

export type VmState = 'stopped' | 'starting' | 'running' | 'stopping' | 'crashed';

/** What a backend needs to launch its VM on a display. */
export interface LaunchContext {
  /** X display string, e.g. ":21". */
  readonly display: string;
  /** runDir/vm/NAME: sockets and logs of this VM. */
  readonly vmDir: string;
  /** Screen size of the display, for backends that must be told. */
  readonly width: number;
  readonly height: number;
  /** Tap interfaces created for this VM's NICs, in nics order. */
  readonly taps: ReadonlyArray<{ ifname: string; mac: string }>;
}

/** Recorded in stateDir so a restarted kvmux can re-adopt the running VM. */
export interface VmRecord {
  readonly name: string;
  readonly backend: VmConfig['backend'];
  readonly pid: number;
  /** Field 22 of /proc/PID/stat: guards against pid reuse. */
  readonly startTime: string;
  readonly display: string;
  readonly sockets: Readonly<Record<string, string>>;
}

/** A running VM process as a backend sees it. */
export interface VmHandle {
  readonly pid: number;
  readonly record: VmRecord;
  /** Resolves with the exit code (null when killed or adopted and lost). */
  readonly exited: Promise<number | null>;
  /** Graceful stop (ACPI powerdown / WM_DELETE / SIGTERM) within timeoutMs, then kill. */
  stop(opts: { force: boolean; timeoutMs?: number }): Promise<void>;
  /** Live memory change where the backend can; returns false when it applies on next start. */
  setMemory(memoryMiB: number): Promise<boolean>;
  /** Drop connections (QMP) without stopping the VM: used at service shutdown for adoption later. */
  detach(): void;
}

export interface Backend {
  readonly kind: VmConfig['backend'];
  /** Chords this backend's UI reacts to on the host; the guard swallows them. */
  readonly hostKeys: readonly string[];
  start(vm: VmConfig, ctx: LaunchContext): Promise<VmHandle>;
  /** Re-attach to a VM still running from a previous kvmux; null when it is gone. */
  adopt(vm: VmConfig, record: VmRecord, ctx: LaunchContext): Promise<VmHandle | null>;
}
