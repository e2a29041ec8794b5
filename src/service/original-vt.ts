import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../util/atomic-file.js';
import { consoleLock } from '../x/console-lock.js';
import { activeVt, switchVt } from '../x/vt.js';
import { displayRecords } from './display-runtime.js';

/**
 * The VT that was active before kvmux took the console, kept in stateDir: after a crash the next
 * kvmux still knows where to go back to, instead of "restoring" onto one of its own VTs.
 */
export interface OriginalVt {
  readonly vt: number;
  restore(): Promise<void>;
  /** Clean stop: forget it, so the next start records afresh. */
  forget(): void;
}

export function rememberOriginalVt(stateDir: string): OriginalVt {
  const file = join(stateDir, 'console-vt');
  const adopting = displayRecords(stateDir).names().length > 0;
  let vt = Number.NaN;
  if (adopting && existsSync(file)) vt = Number(readFileSync(file, 'utf8').trim());
  if (!Number.isInteger(vt) || vt < 1) {
    vt = activeVt();
    writeFileAtomicSync(file, `${vt}\n`);
  }
  return {
    vt,
    // under the console lock: a KMS Xorg still starting (or a switch) must not be cut short
    restore: () =>
      consoleLock.run(
        async () => {
          if (activeVt() !== vt) await switchVt(vt);
        },
        { what: `restore VT ${vt}` },
      ),
    forget: () => rmSync(file, { force: true }),
  };
}
