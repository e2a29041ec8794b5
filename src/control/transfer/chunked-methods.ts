import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { RpcCode, RpcError } from '../../util/errors.js';
import { attachmentPool } from '../rpc/buffer-pool.js';
import { type CallContext, defineMethod, type RpcMethod } from '../rpc/method.js';
import { ChunkedTransfer, decodeBase64 } from './chunked-file.js';

/**
 * The four method rows `<prefix>.begin|chunk|commit|abort` shared by image upload and host update.
 * Each flavor keeps its own table per connection (an upload never counts against, or holds, a host
 * update). A transfer lives while its session does: it is aborted on logout, session expiry,
 * channel close, or when no call touched it for `idleMs`.
 */
export interface ChunkedFlavor<B extends z.ZodType, M> {
  /** Method name prefix, e.g. "image.upload". */
  prefix: string;
  beginParams: B;
  /** Where the temp file goes, and what `finish` needs later. Throws RpcError to refuse. */
  prepare(
    params: z.infer<B>,
    ctx: CallContext,
  ): Promise<{ dir: string; size: number; sha256: string; meta: M }>;
  /** The temp file is open; `cancel` aborts the transfer from outside (e.g. preempted). */
  opened?(meta: M, transfer: ChunkedTransfer, cancel: () => void): void;
  /** Install the verified transfer; returns the commit result. */
  finish(transfer: ChunkedTransfer, meta: M, ctx: CallContext): Promise<unknown>;
  /** Open transfers of this flavor allowed per connection. */
  maxPerConnection: number;
  /** An open transfer untouched this long is aborted (default 5 min). */
  idleMs?: () => number;
  /** Called exactly once whenever a transfer ends: commit, abort, idle, logout, disconnect or failure. */
  released?(meta: M): void;
}

interface Open<M> {
  transfer: ChunkedTransfer;
  meta: M;
  timer: NodeJS.Timeout | undefined;
}

const idParams = z.strictObject({ uploadId: z.string().regex(/^[0-9a-f]{32}$/, 'must be an id from begin') });
const chunkParams = idParams.extend({
  offset: z.number().int().min(0),
  /** base64; omitted when the bytes come as a `#bin N` attachment. */
  data: z.string().optional(),
});

/** The chunk's bytes: the base64 `data` or the binary attachment, exactly one. */
export function chunkBytes(data: string | undefined, ctx: CallContext): Buffer {
  if (data !== undefined && ctx.binary)
    throw new RpcError(
      RpcCode.invalidParams,
      'invalid params: data: give base64 data or a binary attachment, not both',
    );
  if (ctx.binary) return ctx.binary;
  if (data === undefined)
    throw new RpcError(RpcCode.invalidParams, 'invalid params: data: required (base64) unless sent as #bin');
  return decodeBase64(data);
}

/** The four rows `<prefix>.begin|chunk|commit|abort` of one flavor. */
export function chunkedMethods<B extends z.ZodType, M>(f: ChunkedFlavor<B, M>): RpcMethod[] {
  const key = `kvmux.transfers.${f.prefix}`;
  const idleMs = f.idleMs ?? (() => 300_000);

  /** The connection's open transfers of this flavor; all aborted when its session ends. */
  const tableOf = (ctx: CallContext): Map<string, Open<M>> => {
    let map = ctx.connection.get(key) as Map<string, Open<M>> | undefined;
    if (!map) {
      const m = new Map<string, Open<M>>();
      map = m;
      ctx.connection.set(key, m);
      const endAll = () => {
        for (const id of [...m.keys()]) void end(m, id);
        ctx.connection.delete(key);
      };
      ctx.onSessionEnd(endAll);
    }
    return map;
  };

  /** Remove, abort (a no-op after commit) and release: the one way a transfer ends. */
  const end = async (table: Map<string, Open<M>>, id: string) => {
    const t = table.get(id);
    if (!t) return;
    table.delete(id);
    clearTimeout(t.timer);
    await t.transfer.abort();
    f.released?.(t.meta);
  };

  const touch = (table: Map<string, Open<M>>, id: string) => {
    const t = table.get(id);
    if (!t) return;
    clearTimeout(t.timer);
    t.timer = setTimeout(() => void end(table, id), idleMs());
    t.timer.unref();
  };

  const find = (ctx: CallContext, id: string) => {
    const t = tableOf(ctx).get(id);
    if (!t) throw new RpcError(RpcCode.notFound, `${f.prefix}: no open transfer "${id}" on this channel`);
    return t;
  };

  return [
    defineMethod({
      name: `${f.prefix}.begin`,
      params: f.beginParams,
      summary: 'start a chunked transfer; returns {uploadId}',
      async handler(params, ctx) {
        const table = tableOf(ctx);
        if (table.size >= f.maxPerConnection) {
          throw new RpcError(
            RpcCode.tooManyRequests,
            `${f.prefix}: at most ${f.maxPerConnection} open transfers per channel`,
          );
        }
        const prep = await f.prepare(params, ctx);
        const transfer = await ChunkedTransfer.open(prep.dir, prep.size, prep.sha256).catch((err) => {
          f.released?.(prep.meta);
          throw err;
        });
        const uploadId = randomBytes(16).toString('hex');
        table.set(uploadId, { transfer, meta: prep.meta, timer: undefined });
        touch(table, uploadId);
        f.opened?.(prep.meta, transfer, () => void end(table, uploadId));
        return { uploadId };
      },
    }),
    defineMethod({
      name: `${f.prefix}.chunk`,
      params: chunkParams,
      bulk: true,
      summary: 'write data (base64, or a #bin attachment) at offset (= bytes received so far)',
      async handler(p, ctx) {
        const table = tableOf(ctx);
        const t = find(ctx, p.uploadId);
        const bytes = chunkBytes(p.data, ctx);
        // an attachment's buffer is the transfer's now: back to the pool once on its way to disk
        if (ctx.binary) ctx.claimBinary?.();
        try {
          await t.transfer.write(p.offset, bytes, ctx.binary && giveBack);
        } catch (err) {
          // an I/O failure already removed the temp file; a bad offset leaves the transfer usable
          if (t.transfer.finished) await end(table, p.uploadId);
          throw err;
        }
        // only progress keeps the transfer from its idle end (refused or empty chunks could forever)
        if (bytes.length > 0) touch(table, p.uploadId);
        return { received: t.transfer.bytesReceived };
      },
    }),
    defineMethod({
      name: `${f.prefix}.commit`,
      params: idParams,
      summary: 'verify sha256 and install atomically',
      async handler(p, ctx) {
        const table = tableOf(ctx);
        const t = find(ctx, p.uploadId);
        clearTimeout(t.timer);
        try {
          return await f.finish(t.transfer, t.meta, ctx);
        } finally {
          await end(table, p.uploadId);
        }
      },
    }),
    defineMethod({
      name: `${f.prefix}.abort`,
      params: idParams,
      summary: 'drop an open transfer and its temp file',
      async handler(p, ctx) {
        find(ctx, p.uploadId);
        await end(tableOf(ctx), p.uploadId);
        return { aborted: true };
      },
    }),
  ];
}

/** An upload chunk's attachment back to the shared pool, once nothing reads it. */
const giveBack = (buf: Buffer) => attachmentPool.give(buf);
