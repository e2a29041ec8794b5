import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { parseProcStat, readProcStat } from '../../src/util/proc.js';
import { connectDisplay } from '../../src/x/connection.js';
import { listeningDisplays, socketPath } from '../../src/x/display-number.js';
import { adoptXServer, startXServer, type XServer } from '../../src/x/server.js';
import { modeline, xorgConfig } from '../../src/x/xorg-config.js';
import { startTestXvfb, testDisplayRange, testLogDir } from '../helpers/x-servers.js';

const started: XServer[] = [];
afterEach(async () => {
  for (const s of started.splice(0)) await s.stop();
});
const track = (s: XServer) => {
  started.push(s);
  return s;
};

describe('parseProcStat', () => {
  it('reads state and start time even when the command name has spaces and parentheses', () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
    fields[0] = 'Z';
    const st = parseProcStat(`42 (a (b) c) ${fields.join(' ')}`);
    expect(st).toMatchObject({ pid: 42, state: 'Z', ppid: 4, startTime: 22 });
  });
});

describe('xorgConfig', () => {
  it('disables zapping, VT switching and every input device, at the requested size', () => {
    const text = xorgConfig({ width: 1280, height: 720, driver: 'dummy' });
    for (const opt of ['DontZap', 'DontVTSwitch', 'AutoAddDevices', 'AutoEnableDevices', 'AllowEmptyInput']) {
      expect(text).toContain(`Option "${opt}"`);
    }
    expect(text).toContain('Modes "1280x720"');
    expect(text).not.toMatch(/InputDevice|InputClass/);
    expect(modeline(1280, 720)).toMatch(/^Modeline "1280x720" [\d.]+ 1280 /);
  });
});

describe('startXServer (Xvfb)', () => {
  it('starts on a free display, is ready for clients, writes its log, and stops', async () => {
    const s = track(await startTestXvfb({ width: 640, height: 400 }));
    expect(listeningDisplays().has(s.number)).toBe(true);
    expect(s.number).toBeGreaterThanOrEqual(testDisplayRange[0]);
    expect(s.display).toBe(`:${s.number}`);
    expect(s.vt).toBeNull();
    const conn = await connectDisplay(s.display);
    expect([conn.width, conn.height]).toEqual([640, 400]);
    await conn.close();
    expect(existsSync(s.logFile)).toBe(true);
    // detached: its own session, so a dying kvmux does not take it down
    expect(readProcStat(s.pid)?.session).toBe(s.pid);
    await s.stop();
    expect(await s.exited).toEqual({ code: 0, signal: null });
    expect(existsSync(socketPath(s.number))).toBe(false);
    expect(listeningDisplays().has(s.number)).toBe(false);
  });

  it('gives concurrent starts distinct display numbers', async () => {
    const [a, b] = await Promise.all([startTestXvfb(), startTestXvfb()]);
    track(a!);
    track(b!);
    expect(a!.number).not.toBe(b!.number);
  });

  it('skips display numbers that have a listening X socket', async () => {
    const first = testDisplayRange[0];
    const s1 = track(await startXServer({ kind: 'xvfb', logDir: testLogDir(), range: [first, first + 1] }));
    const s2 = track(await startXServer({ kind: 'xvfb', logDir: testLogDir(), range: [first, first + 1] }));
    expect(new Set([s1.number, s2.number])).toEqual(new Set([first, first + 1]));
    await expect(
      startXServer({ kind: 'xvfb', logDir: testLogDir(), range: [first, first + 1] }),
    ).rejects.toThrow(/no free X display/);
    await expect(startXServer({ kind: 'xvfb', logDir: testLogDir(), number: s1.number })).rejects.toThrow(
      /already in use/,
    );
  });

  it('skips a number another live kvmux has claimed, and takes over a stale claim', async () => {
    const first = testDisplayRange[0];
    const claimFile = `/tmp/.kvmux-X${first}.claim`;
    writeFileSync(claimFile, '1'); // pid 1 is alive: a live claim
    try {
      const s = track(await startXServer({ kind: 'xvfb', logDir: testLogDir(), range: [first, first + 1] }));
      expect(s.number).toBe(first + 1);
      writeFileSync(claimFile, '999999999'); // no such pid: stale
      const t = track(await startXServer({ kind: 'xvfb', logDir: testLogDir(), range: [first, first + 1] }));
      expect(t.number).toBe(first);
      expect(existsSync(claimFile)).toBe(false); // dropped once the server listens
    } finally {
      rmSync(claimFile, { force: true });
    }
  });

  it('reports a crash through exited', async () => {
    const s = track(await startTestXvfb());
    process.kill(s.pid, 'SIGKILL');
    expect(await s.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(s.alive()).toBe(false);
  });

  it('fails with the log tail when the server cannot start', async () => {
    const logDir = testLogDir();
    await expect(
      startXServer({ kind: 'xvfb', logDir, number: testDisplayRange[1], width: 0, height: 0 }),
    ).rejects.toThrow(/:119: .*exited/);
  });

  it('re-adopts a running server from its record, and refuses a stale record', async () => {
    const s = track(await startTestXvfb());
    const adopted = adoptXServer(s.record());
    expect(adopted?.display).toBe(s.display);
    expect(adoptXServer({ ...s.record(), startTime: s.startTime + 1 })).toBeNull();
    await adopted!.stop();
    await adopted!.exited;
    expect(s.alive()).toBe(false);
    expect(adoptXServer(s.record())).toBeNull();
  });
});
