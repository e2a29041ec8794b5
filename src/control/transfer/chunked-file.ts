import { createHash, type Hash, randomBytes } from 'node:crypto';
import { type FileHandle, link, open, rename, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { fsyncDir } from '../../util/atomic-file.js';
import { errnoName, RpcCode, RpcError } from '../../util/errors.js';

/**
 * Chunked receive shared by image upload and host update: a temp file beside the destination (same
 * filesystem, so the final rename is atomic), offsets checked, sha256 computed while writing,
 * fsync + rename + fsync(dir) at commit. Every failure removes the temp file.
 */
export const TEMP_PREFIX = '.kvmux-upload-';

export const sha256Schema = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits (sha256)');

export class ChunkedTransfer {
  private received = 0;
  private readonly hash: Hash = createHash('sha256');
  /** The previous chunk's disk write; its failure surfaces on the next call. */
  private pending: Promise<void> = Promise.resolve();
  private done = false;

  private constructor(
    readonly tmpPath: string,
    private readonly fh: FileHandle,
    readonly size: number,
    readonly sha256: string,
  ) {}

  /** Refuses at once when the filesystem cannot hold `size` bytes. */
  static async open(dir: string, size: number, sha256: string): Promise<ChunkedTransfer> {
    const fs = await statfs(dir).catch((err) => {
      throw new RpcError(RpcCode.notFound, `${dir}: cannot use target directory: ${errnoName(err)}`);
    });
    if (fs.bavail * fs.bsize < size) {
      throw new RpcError(
        RpcCode.internal,
        `${dir}: not enough space for ${size} bytes (${fs.bavail * fs.bsize} free)`,
      );
    }
    const tmpPath = join(dir, `${TEMP_PREFIX}${randomBytes(6).toString('hex')}.part`);
    const fh = await open(tmpPath, 'wx', 0o600);
    return new ChunkedTransfer(tmpPath, fh, size, sha256);
  }

  /** Wait for the queued disk write; rethrows its failure (the temp file is gone by then). */
  private async flush(): Promise<void> {
    const p = this.pending;
    this.pending = Promise.resolve();
    await p;
  }

  /** Committed or aborted: no more writes. */
  get finished(): boolean {
    return this.done;
  }

  get bytesReceived(): number {
    return this.received;
  }

  async write(offset: number, data: Buffer): Promise<void> {
    await this.flush();
    if (this.done) throw new RpcError(RpcCode.notFound, `${this.tmpPath}: transfer already finished`);
    if (offset !== this.received) {
      throw new RpcError(
        RpcCode.invalidParams,
        `invalid params: offset: expected ${this.received}, got ${offset}`,
      );
    }
    if (this.received + data.length > this.size) {
      throw new RpcError(
        RpcCode.invalidParams,
        `invalid params: data: would exceed the declared size ${this.size}`,
      );
    }
    // write-behind, one chunk deep: the disk write of chunk N overlaps parsing chunk N+1
    this.hash.update(data);
    this.received += data.length;
    this.pending = this.guard(async () => {
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await this.fh.write(data, done, data.length - done, offset + done);
        done += bytesWritten;
      }
    });
    this.pending.catch(() => undefined);
  }

  /**
   * Verify size and sha256, fsync, optionally `validate` the complete temp file, then move it to
   * `finalPath` (rename when `replace`, else link+unlink so an existing file is never clobbered).
   */
  async commit(
    finalPath: string,
    opts: { replace: boolean; validate?: (tmp: string) => Promise<void> },
  ): Promise<void> {
    await this.flush();
    if (this.received !== this.size) {
      await this.abort();
      throw new RpcError(
        RpcCode.invalidParams,
        `incomplete: received ${this.received} of ${this.size} bytes; aborted`,
      );
    }
    const digest = this.hash.digest('hex');
    if (digest !== this.sha256) {
      await this.abort();
      throw new RpcError(
        RpcCode.invalidParams,
        `sha256 mismatch: declared ${this.sha256}, received ${digest}; aborted`,
      );
    }
    await this.guard(() => this.fh.sync());
    await this.closeHandle();
    try {
      await opts.validate?.(this.tmpPath);
      await (opts.replace ? rename(this.tmpPath, finalPath) : this.linkNoClobber(finalPath));
      await fsyncDir(join(finalPath, '..'));
    } catch (err) {
      await this.abort();
      if (err instanceof RpcError) throw err;
      throw new RpcError(RpcCode.internal, `${finalPath}: cannot install: ${errnoName(err)}`, undefined, {
        cause: err,
      });
    }
    this.done = true;
  }

  /** Remove the temp file; safe to call more than once and after a failure. */
  async abort(): Promise<void> {
    if (this.done) return;
    await this.pending.catch(() => undefined);
    await this.discard();
  }

  /** Close and unlink now; for use inside the queued write itself. */
  private async discard(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.closeHandle();
    await rm(this.tmpPath, { force: true });
  }

  private async linkNoClobber(finalPath: string): Promise<void> {
    try {
      await link(this.tmpPath, finalPath);
    } catch (err) {
      if (errnoName(err) === 'EEXIST') {
        throw new RpcError(
          RpcCode.conflict,
          `${finalPath}: already exists (pass replace: true to overwrite)`,
        );
      }
      throw err;
    }
    await rm(this.tmpPath, { force: true });
  }

  private closed = false;
  private async closeHandle(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close().catch(() => undefined);
  }

  /** Disk full or any I/O error: remove the partial file and say so plainly. */
  private async guard(io: () => Promise<unknown>): Promise<void> {
    try {
      await io();
    } catch (err) {
      await this.discard();
      const why = errnoName(err) === 'ENOSPC' ? 'disk full (ENOSPC)' : errnoName(err);
      throw new RpcError(
        RpcCode.internal,
        `${this.tmpPath}: write failed: ${why}; transfer aborted, nothing kept`,
      );
    }
  }
}

/** Decode base64 strictly: Buffer.from silently skips bad characters, so compare lengths. */
export function decodeBase64(data: string): Buffer {
  const buf = Buffer.from(data, 'base64');
  const pad = data.endsWith('==') ? 2 : data.endsWith('=') ? 1 : 0;
  if (data.length % 4 !== 0 || buf.length !== (data.length / 4) * 3 - pad) {
    throw new RpcError(RpcCode.invalidParams, 'invalid params: data: must be standard base64');
  }
  return buf;
}
