import { randomBytes } from 'node:crypto';
import { execa } from 'execa';

/**
 * A network namespace owned by one test: `kvmux-t-<random>`. Everything a network test creates
 * lives in it (bridges, taps, QEMU), so the machine's real interfaces are never touched.
 */
export interface TestNetns {
  readonly name: string;
  /** Run a command inside the namespace; rejects on non-zero exit. */
  exec(cmd: string, ...args: string[]): Promise<string>;
  /** Parsed `ip -j ...` output inside the namespace. */
  ipJson<T = unknown>(...args: string[]): Promise<T>;
  remove(): Promise<void>;
}

export async function createNetns(tag = ''): Promise<TestNetns> {
  const name = `kvmux-t-${tag}${randomBytes(3).toString('hex')}`;
  await execa('ip', ['netns', 'add', name]);
  await execa('ip', ['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up']);
  const exec = async (cmd: string, ...args: string[]) =>
    String((await execa('ip', ['netns', 'exec', name, cmd, ...args])).stdout);
  return {
    name,
    exec,
    ipJson: async <T>(...args: string[]) => JSON.parse((await exec('ip', '-j', ...args)) || '[]') as T,
    remove: async () => {
      await execa('ip', ['netns', 'del', name], { reject: false });
    },
  };
}

/** Every kvmux-t-* namespace still present (a test must leave none behind). */
export async function listTestNetns(): Promise<string[]> {
  const { stdout } = await execa('ip', ['-j', 'netns', 'list']);
  const rows = JSON.parse(stdout || '[]') as Array<{ name: string }>;
  return rows.map((r) => r.name).filter((n) => n.startsWith('kvmux-t-'));
}
