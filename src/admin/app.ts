import { login } from './login.js';
import { MainView } from './main-view.js';
import { type AdminRpc, callOptional } from './rpc.js';
import { firstBootSetup } from './setup.js';
import { Ui } from './ui.js';

/**
 * The admin app: lock screen, then the main view; back to the lock screen after `idleLockMs`
 * without a key (locking closes every dialog). Any transport: only `rpc` differs.
 */
export interface AdminOptions {
  readonly rpc: AdminRpc;
  /** Shown on the lock screen and header: the socket path or guest device. */
  readonly target: string;
  readonly idleLockMs: number;
  /** Offer first-boot setup when no password is set (only the console can set the first one). */
  readonly setup?: boolean;
}

export class AdminApp {
  private readonly ui = new Ui({ title: 'kvmux admin' });
  private lastKeyMs = Date.now();

  constructor(private readonly opts: AdminOptions) {
    this.ui.onActivity = () => {
      this.lastKeyMs = Date.now();
    };
  }

  /** Runs until the user quits; returns the exit code. */
  async run(): Promise<number> {
    const { rpc, target, idleLockMs } = this.opts;
    const idle = { lockMs: idleLockMs, lastKeyMs: () => this.lastKeyMs };
    let notice = '';
    try {
      let unlocked = false;
      for (;;) {
        // no password yet (first boot, or setup cancelled): a lock screen could never open, so setup
        // again; once set, straight in
        const again = notice.startsWith('Setup cancelled') ? notice : '';
        const setup = this.opts.setup === false ? null : await firstBootSetup(this.ui, rpc, again);
        if (setup !== null) {
          notice = setup;
          unlocked = setup.startsWith('Password set');
          if (!unlocked) continue;
        }
        // after setup the main screen says what was done; after a login the notice was shown there
        const done = unlocked ? notice : undefined;
        if (!unlocked && (await login(this.ui, rpc, target, notice)) === 'quit') return 0;
        unlocked = false;
        this.lastKeyMs = Date.now();
        if ((await new MainView(this.ui, rpc, target, idle).run(done)) === 'quit') return 0;
        notice = 'Locked. Enter the host password to continue.';
        await callOptional(rpc, 'auth.logout').catch(() => undefined);
      }
    } finally {
      this.ui.destroy();
    }
  }
}
