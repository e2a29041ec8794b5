import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import koffi from 'koffi';

/** A real pseudo-terminal pair in raw mode: a pollable character device for reader tests. */
export interface Pty {
  master: number;
  slave: number;
  slavePath: string;
  close(): void;
}

export function openRawPty(): Pty {
  const lib = koffi.load('libc.so.6');
  const posixOpenpt = lib.func('int posix_openpt(int flags)');
  const grantpt = lib.func('int grantpt(int fd)');
  const unlockpt = lib.func('int unlockpt(int fd)');
  const ptsname = lib.func('const char *ptsname(int fd)');
  const master = posixOpenpt(constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK) as number;
  if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0)
    throw new Error(`posix_openpt failed: errno ${koffi.errno()}`);
  const slavePath = ptsname(master) as string;
  const slave = openSync(slavePath, constants.O_RDWR | constants.O_NOCTTY);
  // Raw, no echo, no output processing: bytes written to the slave arrive unchanged at the master.
  execFileSync('stty', ['-F', slavePath, 'raw', '-echo', '-opost']);
  return {
    master,
    slave,
    slavePath,
    close() {
      closeSync(slave);
      closeSync(master);
    },
  };
}
