import { type Logger, pino } from 'pino';

export type { Logger };

/** JSON-lines logger on stderr (stdout stays free for `kvmux ctl` results). */
export function createLogger(opts: { level?: string; name?: string } = {}): Logger {
  return pino(
    { name: opts.name ?? 'kvmux', level: opts.level ?? process.env['KVMUX_LOG_LEVEL'] ?? 'info' },
    pino.destination({ fd: 2, sync: true }),
  );
}

/** A logger that drops everything; for pure tests and tools that must stay quiet. */
export const silentLogger: Logger = pino({ level: 'silent' });
