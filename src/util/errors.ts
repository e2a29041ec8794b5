/** Base of every error kvmux raises on purpose; `name` tells the kind, `cause` keeps the origin. */
export class KvmuxError extends Error {
  override name = 'KvmuxError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Bad configuration: the message names the key (and the line when known). */
export class ConfigError extends KvmuxError {
  override name = 'ConfigError';
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
  constructor(
    readonly vm: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${vm}: ${message}`, options);
  }
}

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
