/** JSON-RPC error codes of the contract. */
export const RpcCode = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internal: -32603,
  unauthorized: -32001,
  forbidden: -32003,
  notFound: -32004,
  conflict: -32009,
  tooManyRequests: -32029,
} as const;
export type RpcCodeValue = (typeof RpcCode)[keyof typeof RpcCode];

/**
 * Base of every error kvmux raises on purpose; `name` tells the kind, `cause` keeps the origin,
 * `rpcCode` is what a JSON-RPC caller gets when it reaches one (internal unless the kind says).
 */
export class KvmuxError extends Error {
  override name = 'KvmuxError';
  readonly rpcCode: number = RpcCode.internal;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A named object that does not exist (a display, a VM, an image): -32004 to an RPC caller. */
export class NotFoundError extends KvmuxError {
  override name = 'NotFoundError';
  override readonly rpcCode: number = RpcCode.notFound;
  constructor(
    readonly kind: string,
    readonly object: string,
    options?: { cause?: unknown },
  ) {
    super(`no ${kind} named "${object}"`, options);
  }
}

/** The object exists but its state forbids the request now (not up yet, busy): -32009. */
export class ConflictError extends KvmuxError {
  override name = 'ConflictError';
  override readonly rpcCode: number = RpcCode.conflict;
}

/** A display cannot do what was asked (not up, not ready): the message names it; -32009. */
export class DisplayError extends KvmuxError {
  override name = 'DisplayError';
  override readonly rpcCode: number = RpcCode.conflict;
  constructor(
    readonly display: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`display "${display}": ${message}`, options);
  }
}

/** A failed syscall made through koffi (ioctl, poll): `code` is the errno name, as in Node's own. */
export class SyscallError extends KvmuxError {
  override name = 'SyscallError';
  constructor(
    readonly syscall: string,
    readonly code: string,
  ) {
    super(`${syscall} failed: ${code}`);
  }
}

/**
 * One line for a log: the message and the chain of causes (`a: b (cause: ENOENT …)`), the errno
 * name of a system error, or the value itself when something that is not an Error was thrown.
 */
export function errText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause === undefined ? '' : ` (cause: ${errText(err.cause)})`;
  return `${err.message}${cause}`;
}

/** Bad configuration: the message names the key (and the line when known). */
export class ConfigError extends KvmuxError {
  override name = 'ConfigError';
  override readonly rpcCode: number = RpcCode.invalidParams;
  constructor(
    message: string,
    readonly issues: readonly string[] = [message],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** An input device failed: the message names the device path. */
export class DeviceError extends KvmuxError {
  override name = 'DeviceError';
  constructor(
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${path}: ${message}`, options);
  }
}

/** An X server or X protocol failure: the message names the display. */
export class XError extends KvmuxError {
  override name = 'XError';
  constructor(
    readonly display: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${display}: ${message}`, options);
  }
}

/** A VM backend failed: the message names the VM. */
export class BackendError extends KvmuxError {
  override name = 'BackendError';
  override readonly rpcCode: number = RpcCode.conflict;
  constructor(
    readonly vm: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${vm}: ${message}`, options);
  }
}

/** An error that travels back to a JSON-RPC caller with its code. */
export class RpcError extends KvmuxError {
  override name = 'RpcError';
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Best-effort errno name of a Node system error (`ENOENT`), else the message. */
export function errnoName(err: unknown): string {
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'string') return err.code;
  return err instanceof Error ? err.message : String(err);
}

/** A host networking step failed (iproute2, nftables, sysctl): the message names the interface. */
export class NetError extends KvmuxError {
  override name = 'NetError';
  constructor(
    readonly ifname: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${ifname}: ${message}`, options);
  }
}
