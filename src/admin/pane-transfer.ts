import { basename } from 'node:path';
import { errText } from '../util/errors.js';
import { escapeTags, kvLines, progressBar } from './format.js';
import { act, type Pane, type PaneCtx } from './pane.js';
import { callOptional } from './rpc.js';
import { type TransferSpec, transferFile } from './upload.js';

/** Runs a transfer with a progress box: hashing first (sha256), then sending. */
async function transferWithProgress(ctx: PaneCtx, label: string, spec: TransferSpec): Promise<unknown> {
  const box = ctx.ui.progress(label);
  try {
    return await transferFile(ctx.rpc, spec, (phase, done, total) =>
      box.update(`${phase === 'hashing' ? 'sha256 ' : 'sending'} ${progressBar(done, total)}`),
    );
  } finally {
    box.close();
  }
}

/** Upload a VM image from a path on the admin's side (this machine, or inside the guest). */
export function uploadPane(): Pane {
  let last: string[] = [];
  const start = async (ctx: PaneCtx) => {
    const path = await ctx.ui.prompt('Upload image', { help: 'Path of the image file on this side' });
    if (!path) return;
    const name = await ctx.ui.prompt('Image name', {
      initial: basename(path),
      help: 'Name on the host (in its first image dir)',
    });
    if (!name) return;
    act(ctx, `upload ${name}`, async () => {
      const result = await transferWithProgress(ctx, `Uploading ${name}`, {
        prefix: 'image.upload',
        path,
        begin: { name },
      });
      last = [`uploaded ${path} as ${name}`, ...kvLines(result, '  ')];
      return `upload ${name}: committed, sha256 verified by the host`;
    });
  };
  return {
    title: 'Upload image',
    hint: 'u / Enter  upload an image file',
    async load() {},
    render() {
      const intro = [
        'Uploads a disk image (qcow2, raw, img, vdi) in 1 MiB chunks.',
        'The sha256 is computed here first; the host checks it, and refuses',
        'disks that name other files (backing or data files), before the',
        'image appears as a stopped VM. From a guest it never takes a sidecar',
        'or autostart: the admin decides what it becomes.',
        '',
        'Press {bold}u{/bold} or {bold}Enter{/bold} to choose a file.',
      ];
      return [...intro, '', ...last.map(escapeTags)].join('\n');
    },
    onKey(ch, key, ctx) {
      if (ch !== 'u' && key !== 'enter') return false;
      void start(ctx);
      return true;
    },
  };
}

/** Host image update: A/B slot status, stage a new root image, roll back. */
export function hostUpdatePane(): Pane {
  let status: string[] = [];
  const stage = async (ctx: PaneCtx) => {
    const path = await ctx.ui.prompt('Host update', { help: 'Path of the new root squashfs image' });
    if (!path) return;
    const version = await ctx.ui.prompt('Version label', {
      initial: basename(path),
      help: 'Shown in the slot status',
    });
    if (version === null) return;
    act(ctx, 'host update', async () => {
      const begin = version ? { version } : {};
      await transferWithProgress(ctx, 'Staging host image', { prefix: 'host.update', path, begin });
      return 'host update staged: it boots next; roll back with b';
    });
  };
  const rollback = async (ctx: PaneCtx) => {
    if (!(await ctx.ui.confirm('Roll back the host to the previous slot at next boot?'))) return;
    act(ctx, 'rollback', async () => {
      await ctx.rpc.call('host.update.rollback');
      return 'rollback done: the previous slot boots next';
    });
  };
  const power = async (ctx: PaneCtx, question: string, what: string, method: string, done: string) => {
    if (!(await ctx.ui.confirm(question))) return;
    act(ctx, what, async () => {
      await ctx.rpc.call(method);
      return done;
    });
  };
  return {
    title: 'Host update',
    hint: 'u upload new host image  b roll back  a apply (reboot into it)  R reboot  P power off  F5 refresh',
    async load(ctx) {
      const s = await callOptional(ctx.rpc, 'host.update.status').catch((e: unknown) => ({
        error: errText(e),
      }));
      status = s === undefined ? ['host updates are not provided by this service'] : kvLines(s);
    },
    render() {
      return ['{bold}A/B slots{/bold}', ...status.map(escapeTags)].join('\n');
    },
    onKey(ch, _key, ctx) {
      if (ch === 'u') void stage(ctx);
      else if (ch === 'b') void rollback(ctx);
      else if (ch === 'a')
        void power(
          ctx,
          'Reboot now into the staged host image? Every VM is shut down first.',
          'apply',
          'host.update.apply',
          'rebooting into the staged slot',
        );
      else if (ch === 'R')
        void power(
          ctx,
          'Reboot the host now? Every VM is shut down first.',
          'reboot',
          'host.reboot',
          'rebooting',
        );
      else if (ch === 'P')
        void power(
          ctx,
          'Power the host off now? Every VM is shut down first.',
          'power off',
          'host.shutdown',
          'powering off',
        );
      else return false;
      return true;
    },
  };
}
