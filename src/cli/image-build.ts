import { buildImage } from '../image/build.js';

/** `kvmux image build`: prints progress on stderr and a JSON summary on stdout. */
export default async function imageBuild(opts: {
  out: string;
  config?: string;
  splash?: string;
  cacheDir?: string;
  disk?: boolean;
}): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write(
      'kvmux image build: must run as root (mmdebstrap --mode=root, device nodes in the root)\n',
    );
    return 1;
  }
  const r = await buildImage({
    out: opts.out,
    ...(opts.config ? { config: opts.config } : {}),
    ...(opts.splash ? { splash: opts.splash } : {}),
    ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}),
    disk: opts.disk !== false,
  });
  process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  return 0;
}
