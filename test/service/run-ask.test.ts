import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/temp.js';
import { type Kvmux, sleep, startKvmux } from './kvmux-harness.js';

/**
 * Policy `ask` end to end: a guest asks over its guest channel; kvmux shows the question in the
 * trusted overlay on the physical console, and only keys from the keyboard answer it. The guest
 * here is a `command` VM whose program listens on its guest-channel socket the way QEMU's chardev
 * does (socat), with a shell script on the guest side of the line.
 */
const PASSWORD = 'ask-test-password';
let k: Kvmux;
let out: string;

function guestScript(dir: string): string {
  out = join(dir, 'guest-replies.txt');
  const script = join(dir, 'guest.sh');
  const call = (id: number, method: string, params: unknown) =>
    `echo '${JSON.stringify({ jsonrpc: '2.0', id, method, params })}'; read -r r; echo "$r" >> ${out}`;
  writeFileSync(
    script,
    [
      call(1, 'auth.login', { password: PASSWORD }),
      call(2, 'vm.stop', { name: 'victim', force: true }),
      call(3, 'vm.stop', { name: 'victim', force: true }),
      'sleep 30',
    ].join('\n'),
  );
  return script;
}

function overlayMapped(display: string): boolean {
  const tree = execFileSync('xwininfo', ['-display', display, '-root', '-tree'], { encoding: 'utf8' });
  const line = tree.split('\n').find((l) => l.includes('"kvmux menu"'));
  if (!line) return false;
  const id = line.trim().split(/\s+/)[0]!;
  return /IsViewable/.test(execFileSync('xwininfo', ['-display', display, '-id', id], { encoding: 'utf8' }));
}

async function until(fn: () => boolean | Promise<boolean>, what: string, ms = 15_000) {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(100);
  }
}

const replies = () => (existsSync(out) ? readFileSync(out, 'utf8').trim().split('\n').filter(Boolean) : []);
const victim = async () =>
  (await k.call<Array<{ name: string; state: string }>>('vm.list')).find((v) => v.name === 'victim')!.state;

beforeAll(async () => {
  const dir = tempDir('kvmux-ask-');
  const script = guestScript(dir);
  // the command backend tells its program the VM dir, where kvmux dials the guest channel
  k = await startKvmux({
    password: PASSWORD,
    vms: [
      { name: 'victim', backend: 'command', command: ['xterm'] },
      {
        name: 'asker',
        backend: 'command',
        guestChannel: true,
        command: [
          'sh',
          '-c',
          `exec socat UNIX-LISTEN:"$KVMUX_VM_DIR/control.sock",unlink-early EXEC:"sh ${script}"`,
        ],
      },
    ],
    extra: {
      policy: [{ from: 'asker', method: 'vm.stop', action: 'ask', target: 'victim' }],
      // the guest asks again right after the deny: no cooldown here (guest-attacks tests it)
      menu: { askCooldownSeconds: 0 },
    },
  });
}, 90_000);

afterAll(async () => {
  await k?.stop();
});

describe('policy ask over a guest channel', () => {
  it('shows the question on the console; Esc denies (-32003), Enter allows', async () => {
    const active = (await k.call<Array<{ display: string; active: boolean }>>('display.list')).find(
      (d) => d.active,
    )!;
    await until(() => replies().length >= 1, 'the guest to log in');
    expect(JSON.parse(replies()[0]!).result).toMatchObject({ ok: true, as: 'asker' });

    await until(() => overlayMapped(active.display), 'the first question on screen');
    expect(await victim()).toBe('running');
    await k.kb.tap('esc');
    await until(() => replies().length >= 2, 'the first answer');
    expect(JSON.parse(replies()[1]!).error.code).toBe(-32003);
    expect(await victim()).toBe('running');

    await until(() => overlayMapped(active.display), 'the second question on screen');
    // the menu stays reachable: a double Scroll Lock opens it over the question, Esc brings it back
    const menuOpen = async () => (await k.call<{ open: boolean }>('menu.state')).open;
    await k.kb.doubleTap();
    await until(menuOpen, 'the menu over the question');
    await k.kb.tap('esc');
    await until(async () => !(await menuOpen()) && overlayMapped(active.display), 'the question back');
    expect(replies()).toHaveLength(2);
    await k.kb.tap('enter');
    await until(() => replies().length >= 3, 'the second answer');
    expect(JSON.parse(replies()[2]!).result.state).toBe('stopped');
    expect(await victim()).toBe('stopped');
    expect(overlayMapped(active.display)).toBe(false);
  });
});
