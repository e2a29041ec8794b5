import { readFileSync } from 'node:fs';
import { summarize } from './stats.js';

/**
 * Where a key's time goes, from the scheduler's own record: `perf sched record -a` around
 * `npm run bench -- e2e`, then `perf sched timehist -w -i perf.data > timehist.txt`, then
 *
 *   node dist/bench/sched-chain.js timehist.txt BENCH_PID KVMUX_PID XSERVER_PID RECEIVER_PID
 *
 * (or the task names as the timehist shows them, e.g. MainThread[1234] under Node 24)
 * (the pids are in the timehist: the bench's node, kvmux's node, the Xvfb, and the key receiver,
 * which runs last). Each of the receiver's key wake-ups by the X server is traced back: to kvmux
 * woken by the bench (a key through the FIFO) or to the bench itself (a bare XTEST key). Each part
 * of the path is timed (µs): kvmux's wake-up, its work until it wakes the X server, the server's
 * wake-up and work, and the receiver's wake-up. For the receiver's waits over 300 µs it lists who
 * held its CPU meanwhile. A diagnostic, not part of `npm run bench`: it needs perf and root.
 */

interface Run {
  start: number;
  end: number;
  cpu: number;
  task: string;
}

interface Trial {
  parts: Record<string, number>;
  rxCpu: number;
  wokeAt: number;
  ranAt: number;
}

const LINE = /^\s*(\d+\.\d+)\s+\[(\d+)\]\s+(\S+)\s+(.*)$/;

function parse(text: string) {
  const runs: Run[] = [];
  const wakes: Array<{ t: number; waker: string; wakee: string }> = [];
  for (const line of text.split('\n')) {
    const m = LINE.exec(line);
    if (!m) continue;
    const t = Number(m[1]);
    const rest = m[4]!;
    const awakened = /awakened: (\S+)/.exec(rest);
    if (awakened) {
      wakes.push({ t, waker: m[3]!, wakee: awakened[1]! });
      continue;
    }
    const cols = rest.trim().split(/\s+/).map(Number); // wait, sch delay, run time (ms)
    if (cols.length < 3 || cols.some(Number.isNaN)) continue;
    runs.push({ start: t - cols[2]! / 1000, end: t, cpu: Number(m[2]), task: m[3]! });
  }
  return { runs, wakes };
}

function main() {
  const [file, bench, kvmux, xPid, rxPid] = process.argv.slice(2);
  if (!file || !rxPid) {
    console.error('usage: sched-chain TIMEHIST BENCH_PID KVMUX_PID XSERVER_PID RECEIVER_PID');
    process.exit(2);
  }
  const { runs, wakes } = parse(readFileSync(file, 'utf8'));
  // a bare pid is a node process's main thread as Node 20 names it; Node 24 names it MainThread[PID]
  const node = (pid: string) => (pid.includes('[') ? pid : `node[${pid}]`);
  const [B, K, X, R] = [
    node(bench!),
    node(kvmux!),
    xPid!.includes('[') ? xPid! : `Xvfb[${xPid}]`,
    node(rxPid),
  ];
  const runsOf = new Map<string, Run[]>();
  const runsOn = new Map<number, Run[]>();
  const into = <K>(m: Map<K, Run[]>, k: K, r: Run) => {
    const list = m.get(k);
    if (list) list.push(r);
    else m.set(k, [r]);
  };
  for (const r of runs) {
    into(runsOf, r.task, r);
    into(runsOn, r.cpu, r);
  }
  const firstRun = (task: string, t: number) => runsOf.get(task)?.find((r) => r.start >= t - 1e-7);
  const us = (s: number) => s * 1e6;
  const trials: Record<'viaKvmux' | 'bareXtest', Trial[]> = { viaKvmux: [], bareXtest: [] };
  let xWoken: { t: number; by: string } | null = null;
  let kvWoken: number | null = null;
  for (const w of wakes) {
    if (w.wakee === X) xWoken = { t: w.t, by: w.waker };
    if (w.wakee === K && w.waker === B) kvWoken = w.t;
    if (w.wakee !== R || w.waker !== X || !xWoken) continue;
    const rx = firstRun(R, w.t);
    const xr = firstRun(X, xWoken.t);
    if (!rx || !xr) continue;
    const tail = { xDelay: us(xr.start - xWoken.t), xWork: us(w.t - xr.start), rxDelay: us(rx.start - w.t) };
    const at = { rxCpu: rx.cpu, wokeAt: w.t, ranAt: rx.start };
    if (xWoken.by === K && kvWoken !== null && xWoken.t - kvWoken < 0.02) {
      const kr = firstRun(K, kvWoken);
      if (kr)
        trials.viaKvmux.push({
          parts: {
            total: us(rx.start - kvWoken),
            kvDelay: us(kr.start - kvWoken),
            kvWork: us(xWoken.t - kr.start),
            ...tail,
          },
          ...at,
        });
      kvWoken = null;
    } else if (xWoken.by === B) {
      trials.bareXtest.push({ parts: { total: us(rx.start - xWoken.t), ...tail }, ...at });
    }
    xWoken = null;
  }
  const ownThread = (task: string) => /^[\w-]+\[\d+\/\d+\]$/.test(task);
  const nodeMain = (task: string) => task.startsWith('node[') || task.startsWith('MainThread[');
  const who = (task: string) =>
    task === B || task === K || task === R || task === X || ownThread(task) || !nodeMain(task)
      ? task
      : 'another node process (the spinner)';
  const report = Object.fromEntries(
    Object.entries(trials).map(([path, list]) => {
      const parts = Object.fromEntries(
        Object.keys(list[0]?.parts ?? {}).map((k) => [
          k,
          summarize(
            list.map((t) => t.parts[k]!),
            0,
          ),
        ]),
      );
      const held = new Map<string, number>();
      const long = list.filter((t) => t.parts['rxDelay']! > 300);
      for (const t of long)
        for (const r of runsOn.get(t.rxCpu) ?? []) {
          const overlap = Math.min(r.end, t.ranAt) - Math.max(r.start, t.wokeAt);
          if (overlap > 0 && r.task !== R) held.set(who(r.task), (held.get(who(r.task)) ?? 0) + us(overlap));
        }
      const receiverCpus: Record<string, number> = {};
      for (const t of list) receiverCpus[t.rxCpu] = (receiverCpus[t.rxCpu] ?? 0) + 1;
      return [
        path,
        {
          trials: list.length,
          partsUs: parts,
          receiverCpus,
          receiverWaitsOver300Us: long.length,
          heldTheReceiversCpuUs: Object.fromEntries(
            [...held].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, Math.round(v)]),
          ),
        },
      ];
    }),
  );
  console.log(JSON.stringify(report, null, 2));
}

main();
