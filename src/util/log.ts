import { type Logger, pino } from 'pino';

export type { Logger };

/** The last N log lines, kept in memory for `service.log` and the admin screen. */
export class LogRing {
  private readonly lines: string[] = [];

  constructor(private readonly capacity = 2000) {}

  write(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.capacity) this.lines.splice(0, this.lines.length - this.capacity);
  }

  tail(n: number): unknown[] {
    return this.lines.slice(-n).map((l) => {
      try {
        return JSON.parse(l) as unknown;
      } catch {
        return { msg: l };
      }
    });
  }
}

/** JSON-lines logger on stderr (stdout stays free for `kvmux ctl` results), optionally into a ring. */
export function createLogger(opts: { level?: string; name?: string; ring?: LogRing } = {}): Logger {
  const level = opts.level ?? process.env['KVMUX_LOG_LEVEL'] ?? 'info';
  const options = { name: opts.name ?? 'kvmux', level };
  const stderr = pino.destination({ fd: 2, sync: true });
  if (!opts.ring) return pino(options, stderr);
  const ring = opts.ring;
  return pino(
    options,
    pino.multistream([
      { stream: stderr, level: level as pino.Level },
      { stream: { write: (line: string) => ring.write(line.trimEnd()) }, level: level as pino.Level },
    ]),
  );
}

/** A logger that drops everything; for pure tests and tools that must stay quiet. */
export const silentLogger: Logger = pino({ level: 'silent' });
