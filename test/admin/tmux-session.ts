import { type ChildProcess, execFileSync, spawn } from 'node:child_process';

/**
 * A private tmux server for TUI tests, run with `-D` as OUR child (not a daemon): pid 1 here does
 * not reap orphans, so a daemonised tmux server would stay a zombie after kill-server.
 */
export class TmuxSession {
  private readonly server: ChildProcess;
  private readonly exited: Promise<void>;

  private constructor(readonly socketName: string) {
    this.server = spawn('tmux', ['-D', '-L', socketName, '-f', '/dev/null'], { stdio: 'ignore' });
    this.exited = new Promise((resolve) => this.server.once('exit', () => resolve()));
  }

  static async start(command: string, size = { width: 120, height: 40 }): Promise<TmuxSession> {
    const t = new TmuxSession(`kvmux-menu-${process.pid}-${Date.now()}`);
    await t.until(
      () => {
        try {
          t.tmux('list-sessions');
        } catch (err) {
          // "no server running" until it listens; "no sessions" once it does.
          return /no sessions/.test(String((err as { stderr?: unknown }).stderr ?? err));
        }
        return true;
      },
      10_000,
      'tmux server to listen',
    );
    t.tmux('new-session', '-d', '-s', 'main', '-x', String(size.width), '-y', String(size.height), command);
    return t;
  }

  tmux(...args: string[]): string {
    return execFileSync('tmux', ['-L', this.socketName, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  keys(...keys: string[]): void {
    this.tmux('send-keys', '-t', 'main', ...keys);
  }

  /** Literal text (no key-name lookup). */
  type(text: string): void {
    this.tmux('send-keys', '-t', 'main', '-l', text);
  }

  screen(): string {
    return this.tmux('capture-pane', '-p', '-t', 'main');
  }

  async until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Wait until the pane shows `pattern`; returns the screen. The error shows what was there. */
  async waitFor(pattern: RegExp, timeoutMs = 15_000): Promise<string> {
    let last = '';
    try {
      const seen = () => {
        last = this.screen();
        return pattern.test(last);
      };
      await this.until(seen, timeoutMs, String(pattern));
    } catch (err) {
      throw new Error(`${(err as Error).message}; screen was:\n${last}`);
    }
    return last;
  }

  panePid(): number {
    return Number(this.tmux('display-message', '-p', '-t', 'main', '#{pane_pid}').trim());
  }

  /** Kill the pane's process by pid, then the server (our child), and wait for it to exit. */
  async stop(): Promise<void> {
    try {
      process.kill(this.panePid(), 'SIGTERM');
    } catch {
      // already gone
    }
    try {
      this.tmux('kill-server');
    } catch {
      this.server.kill('SIGTERM');
    }
    await this.exited;
  }
}
