import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { RpcCode, RpcError } from '../../util/errors.js';
import { type CallContext, defineMethod, type RpcMethod } from '../rpc/method.js';
import { ChunkedTransfer, decodeBase64 } from './chunked-file.js';

/**
 * The four method rows `<prefix>.begin|chunk|commit|abort` shared by image upload and host update.
 * Transfers belong to the connection that began them and are aborted when it closes.
 */
/** How one kind of transfer (image upload, host update) begins and finishes. */
export interface ChunkedFlavor<B extends z.ZodType, M> {
  /** Method name prefix, e.g. "image.upload". */
  prefix: string;
  beginParams: B;
  /** Where the temp file goes, and what `finish` needs later. Throws RpcError to refuse. */
  prepare(
    params: z.infer<B>,
    ctx: CallContext,
  ): Promise<{ dir: string; size: number; sha256: string; meta: M }>;
  /** Install the verified transfer; returns the commit result. */
  finish(transfer: ChunkedTransfer, meta: M, ctx: CallContext): Promise<unknown>;
  /** Open transfers allowed per connection (across flavors sharing `slotKey`). */
  maxPerConnection: number;
  /** Called whenever a transfer ends: commit, abort, disconnect or failure. */
  released?(meta: M): void;
}

interface Open<M> {
  transfer: ChunkedTransfer;
  meta: M;
}

const TRANSFERS = 'kvmux.transfers';

/** The connection's open transfers; all aborted when the connection closes. */
function transfersOf(ctx: CallContext): Map<string, Open<unknown> & { release(): void }> {
  let map = ctx.connection.get(TRANSFERS) as Map<string, Open<unknown> & { release(): void }> | undefined;
  if (!map) {
    const m = new Map<string, Open<unknown> & { release(): void }>();
    map = m;
    ctx.connection.set(TRANSFERS, m);
    ctx.signal.addEventListener('abort', () => {
      for (const [id, t] of m) {
        m.delete(id);
        void t.transfer.abort().finally(() => t.release());
      }
    });
  }
  return map;
}

const idParams = z.strictObject({ uploadId: z.string().regex(/^[0-9a-f]{32}$/, 'must be an id from begin') });
const chunkParams = idParams.extend({
  offset: z.number().int().min(0),
  data: z.string(),
});

/** The four rows `<prefix>.begin|chunk|commit|abort` of one flavor. */
export function chunkedMethods<B extends z.ZodType, M>(f: ChunkedFlavor<B, M>): RpcMethod[] {
  const find = (ctx: CallContext, id: string) => {
    const t = transfersOf(ctx).get(id);
    if (!t) throw new RpcError(RpcCode.notFound, `${f.prefix}: no open transfer "${id}" on this channel`);
    return t as Open<M> & { release(): void };
  };
  const drop = (ctx: CallContext, id: string) => {
    const t = transfersOf(ctx).get(id);
    transfersOf(ctx).delete(id);
    t?.release();
  };
  return [
    defineMethod({
      name: `${f.prefix}.begin`,
      params: f.beginParams,
      summary: 'start a chunked transfer; returns {uploadId}',
      async handler(params, ctx) {
        const map = transfersOf(ctx);
        if (map.size >= f.maxPerConnection) {
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
        map.set(uploadId, { transfer, meta: prep.meta, release: () => f.released?.(prep.meta) });
        return { uploadId };
      },
    }),
    defineMethod({
      name: `${f.prefix}.chunk`,
      params: chunkParams,
      summary: 'write base64 data at offset (= bytes received so far)',
      async handler(p, ctx) {
        const t = find(ctx, p.uploadId);
        try {
          await t.transfer.write(p.offset, decodeBase64(p.data));
        } catch (err) {
          // an I/O failure already removed the temp file; a bad offset leaves the transfer usable
          if (t.transfer.finished) drop(ctx, p.uploadId);
          throw err;
        }
        return { received: t.transfer.bytesReceived };
      },
    }),
    defineMethod({
      name: `${f.prefix}.commit`,
      params: idParams,
      summary: 'verify sha256 and install atomically',
      async handler(p, ctx) {
        const t = find(ctx, p.uploadId);
        try {
          return await f.finish(t.transfer, t.meta, ctx);
        } finally {
          await t.transfer.abort();
          drop(ctx, p.uploadId);
        }
      },
    }),
    defineMethod({
      name: `${f.prefix}.abort`,
      params: idParams,
      summary: 'drop an open transfer and its temp file',
      async handler(p, ctx) {
        const t = find(ctx, p.uploadId);
        await t.transfer.abort();
        drop(ctx, p.uploadId);
        return { aborted: true };
      },
    }),
  ];
}
