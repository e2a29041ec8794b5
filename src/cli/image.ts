import { basename, join, resolve } from 'node:path';
import { loadConfigFile, resolveConfigPath } from '../config/config.js';
import { connectSocket } from '../control/rpc/client.js';
import { receiveFile, sendFile } from '../control/transfer/transfer-client.js';
import { RpcError } from '../util/errors.js';

/**
 * `kvmux image upload FILE [--name N] [--replace]` and `kvmux image download NAME [--out FILE]`:
 * move images between hosts over the control socket. Both hash what they move: the host checks an
 * upload's sha256 at commit, and download checks the file it wrote against the host's sha256.
 */
interface ImageCliOptions {
  config?: string;
  socket?: string;
  name?: string;
  replace?: boolean;
  out?: string;
  base64?: boolean;
}

function socketOf(opts: ImageCliOptions): string {
  return opts.socket ?? join(loadConfigFile(resolveConfigPath(opts.config)).runDir, 'control.sock');
}

const progress = (label: string) => {
  let last = 0;
  return (done: number, total: number) => {
    const pct = Math.floor((done / total) * 100);
    if (!process.stderr.isTTY || pct === last) return;
    last = pct;
    process.stderr.write(`\r${label}: ${pct}%${done === total ? '\n' : ''}`);
  };
};

async function run(
  opts: ImageCliOptions,
  fn: (c: Awaited<ReturnType<typeof connectSocket>>) => Promise<unknown>,
) {
  const client = await connectSocket(socketOf(opts), { timeoutMs: 120_000 });
  try {
    const result = await fn(client);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  } catch (err) {
    if (err instanceof RpcError) {
      process.stderr.write(`kvmux: ${err.message} (${err.code})\n`);
      return 1;
    }
    throw err;
  } finally {
    client.close();
  }
}

export async function upload(file: string, opts: ImageCliOptions): Promise<number> {
  return run(opts, (c) =>
    sendFile(c, {
      prefix: 'image.upload',
      file,
      begin: { name: opts.name ?? basename(file), replace: opts.replace ?? false },
      binary: !opts.base64,
      onProgress: progress(`upload ${basename(file)}`),
    }),
  );
}

export async function download(name: string, opts: ImageCliOptions): Promise<number> {
  return run(opts, (c) =>
    receiveFile(c, {
      name,
      out: resolve(opts.out ?? name),
      binary: !opts.base64,
      onProgress: progress(`download ${name}`),
    }),
  );
}

export async function list(opts: ImageCliOptions): Promise<number> {
  return run(opts, (c) => c.call('image.list', {}, 600_000));
}
