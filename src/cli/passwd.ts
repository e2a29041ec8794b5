import { loadConfigFile, resolveConfigPath } from '../config/config.js';
import { passwdPath, writePasswordFile } from '../control/auth/auth.js';
import { KvmuxError } from '../util/errors.js';

/**
 * `kvmux passwd`: set the host admin password. Not a TTY: the first line of stdin. A TTY: asked
 * twice without echo.
 */
export default async function passwd(opts: { config?: string }): Promise<number> {
  const stateDir = loadConfigFile(resolveConfigPath(opts.config)).stateDir;
  const password = process.stdin.isTTY ? await askTwice() : await firstLine();
  if (!password) throw new KvmuxError('password must not be empty');
  const path = passwdPath(stateDir);
  await writePasswordFile(path, password);
  process.stderr.write(`kvmux: admin password written to ${path}\n`);
  return 0;
}

async function firstLine(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) {
    chunks.push(c as Buffer);
    if ((c as Buffer).includes(0x0a)) break;
  }
  // the line as typed: spaces are part of a password (the login does not trim either)
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
}

async function askTwice(): Promise<string> {
  const a = await askHidden('New admin password: ');
  const b = await askHidden('Repeat it: ');
  if (a !== b) throw new KvmuxError('the two passwords differ; nothing changed');
  return a;
}

/** Read one line in raw mode, echoing nothing; Ctrl+C aborts. */
function askHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  // echo off before the prompt shows, or keys typed right after it would be echoed
  stdin.setRawMode(true);
  process.stderr.write(prompt);
  stdin.resume();
  let text = '';
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      err ? reject(err) : resolve(text);
    };
    const onData = (buf: Buffer) => {
      for (const ch of buf.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new KvmuxError('cancelled; nothing changed'));
        if (ch === '\u007f' || ch === '\b') text = text.slice(0, -1);
        else text += ch;
      }
    };
    stdin.on('data', onData);
  });
}
