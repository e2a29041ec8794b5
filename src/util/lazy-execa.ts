import type { Options, Result } from 'execa';

/**
 * execa, loaded on its first call: its ~170 module files cost `kvmux run` about 150 ms before its
 * first display could start, and nothing on the way to the first VM's screen runs a command with it.
 */
// biome-ignore lint/complexity/noBannedTypes: execa's own default (no options: string output)
export async function execa<const O extends Options = {}>(
  file: string,
  args: readonly string[] = [],
  options?: O,
): Promise<Result<O>> {
  const mod = await import('execa');
  // the awaited subprocess is its Result; its promise type, not its value, is what differs
  return (await mod.execa(file, args, options)) as unknown as Result<O>;
}
