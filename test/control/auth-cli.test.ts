import { execFile, spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fileAuthenticator,
  hashPassword,
  passwdPath,
  readPasswordFile,
  verifyPassword,
  writePasswordFile,
} from '../../src/control/auth/auth.js';
import type { ControlServer } from '../../src/control/rpc/server.js';
import { startServer, tempDir } from './helpers.js';

const run = promisify(execFile);
const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
const TSX = join(import.meta.dirname, '../../node_modules/.bin/tsx');

/** Run the real CLI; resolves with its exit code and output. */
function kvmux(args: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(TSX, [MAIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(stdin ?? '');
  });
}

describe('password hashing', () => {
  it('stores scrypt parameters and salt, never the password', async () => {
    const t = tempDir();
    const path = passwdPath(t.dir);
    await writePasswordFile(path, 'sesame', { N: 1024, r: 8, p: 1 });
    const text = readFileSync(path, 'utf8');
    expect(text).not.toContain('sesame');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const rec = await readPasswordFile(path);
    expect(rec).toMatchObject({ alg: 'scrypt', N: 1024, r: 8, p: 1 });
    expect(await verifyPassword('sesame', rec!)).toBe(true);
    expect(await verifyPassword('Sesame', rec!)).toBe(false);
    expect(await verifyPassword('', rec!)).toBe(false);
    t.cleanup();
  });

  it('salts every hash differently', async () => {
    const a = await hashPassword('same', { N: 1024, r: 8, p: 1 });
    const b = await hashPassword('same', { N: 1024, r: 8, p: 1 });
    expect(a.salt).not.toBe(b.salt);
    expect(a.hash).not.toBe(b.hash);
  });

  it('refuses every login while no password is set', async () => {
    const t = tempDir();
    expect(await fileAuthenticator(passwdPath(t.dir)).check('')).toBe(false);
    expect(await fileAuthenticator(passwdPath(t.dir)).check('anything')).toBe(false);
    t.cleanup();
  });
});

describe('kvmux passwd and kvmux ctl', () => {
  let t: ReturnType<typeof tempDir>;
  let server: ControlServer;
  let sock: string;
  let config: string;

  beforeAll(async () => {
    t = tempDir();
    ({ server, sock } = await startServer(t.dir));
    config = join(t.dir, 'kvmux.yaml');
    writeFileSync(config, `runDir: ${join(t.dir, 'run')}\nstateDir: ${join(t.dir, 'state')}\n`);
  });
  afterAll(async () => {
    await server.close();
    t.cleanup();
  });

  it('passwd reads the first line of stdin and writes the hash with mode 0600', async () => {
    const r = await kvmux(['passwd', '--config', config], 'open sesame\nignored second line\n');
    expect(r.code).toBe(0);
    const path = join(t.dir, 'state', 'admin.passwd');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const auth = fileAuthenticator(path);
    expect(await auth.check('open sesame')).toBe(true);
    expect(await auth.check('ignored second line')).toBe(false);
  });

  it('passwd keeps spaces around the password: they are typed at the login too', async () => {
    const r = await kvmux(['passwd', '--config', config], '  spaced out \n');
    expect(r.code).toBe(0);
    const auth = fileAuthenticator(join(t.dir, 'state', 'admin.passwd'));
    expect(await auth.check('  spaced out ')).toBe(true);
    expect(await auth.check('spaced out')).toBe(false);
    await kvmux(['passwd', '--config', config], 'open sesame\n');
  });

  it('passwd refuses an empty password and keeps the old one', async () => {
    const r = await kvmux(['passwd', '--config', config], '\n');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/must not be empty/);
    expect(await fileAuthenticator(join(t.dir, 'state', 'admin.passwd')).check('open sesame')).toBe(true);
  });

  /** Run `kvmux passwd` on a pseudo-terminal (socat), typing `answers` at each prompt. */
  function passwdOnTty(answers: string[]): Promise<{ code: number; output: string }> {
    const cmd = `${TSX} ${MAIN} passwd --config ${config}`;
    const child = spawn('socat', ['-', `EXEC:${cmd},pty,setsid,ctty,stderr`], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let output = '';
    const prompts = [/New admin password: $/, /Repeat it: $/];
    child.stdout.on('data', (d) => {
      output += d;
      const next = prompts[0];
      if (next?.test(output)) {
        prompts.shift();
        child.stdin.write(`${answers.shift()}\r`);
      }
    });
    return new Promise((resolve) => child.on('close', (code) => resolve({ code: code ?? -1, output })));
  }

  it('passwd on a terminal asks twice and never echoes the password', async () => {
    const r = await passwdOnTty(['typed on a tty', 'typed on a tty']);
    expect(r.output).toMatch(/admin password written to/);
    expect(r.output).not.toContain('typed on a tty');
    expect(await fileAuthenticator(join(t.dir, 'state', 'admin.passwd')).check('typed on a tty')).toBe(true);
  });

  it('passwd on a terminal changes nothing when the two entries differ', async () => {
    const r = await passwdOnTty(['first try', 'second try']);
    expect(r.output).toMatch(/the two passwords differ; nothing changed/);
    expect(await fileAuthenticator(join(t.dir, 'state', 'admin.passwd')).check('typed on a tty')).toBe(true);
  });

  it('ctl prints the result as JSON, using runDir from the config', async () => {
    const r = await kvmux(['ctl', 'vm.stop', '{"name":"alpha"}', '--config', config]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ stopped: 'alpha' });
  });

  it('ctl prints the error on stderr and exits 1', async () => {
    const r = await kvmux(['ctl', 'vm.stop', '{}', '--socket', sock]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/vm\.stop: invalid params.*name.*\(-32602\)/);
    const bad = await kvmux(['ctl', 'vm.stop', '{name:', '--socket', sock]);
    expect([bad.code, bad.stderr]).toEqual([1, expect.stringMatching(/not valid JSON/)]);
    const gone = await kvmux(['ctl', 'vm.list', '--socket', join(t.dir, 'nope.sock')]);
    expect([gone.code, gone.stderr]).toEqual([1, expect.stringMatching(/nope\.sock: cannot connect/)]);
  });

  it('the raw protocol works from a shell tool (socat), as the README shows', async () => {
    const { stdout } = await run('bash', [
      '-c',
      `printf '%s\\n' '{"jsonrpc":"2.0","id":1,"method":"vm.list"}' | socat -t 2 - UNIX-CONNECT:${sock}`,
    ]);
    expect(JSON.parse(stdout)).toMatchObject({ id: 1, result: [{ name: 'alpha' }, { name: 'beta' }] });
  });
});
