import blessed from 'blessed';
import { escapeTags } from './format.js';
import { editLine, type LineState } from './line-edit.js';
import { type AdminRpc, errorText } from './rpc.js';
import { DIALOG_LOOK, type Ui } from './ui.js';

/**
 * The lock screen: asks for the host password and checks it with `auth.login` on every transport,
 * the local socket included, so the admin display is never open to whoever walks up to it.
 * Lockout after repeated failures is the server's; its message is shown as is.
 */
export function login(ui: Ui, rpc: AdminRpc, target: string, notice = ''): Promise<'ok' | 'quit'> {
  const box = blessed.box({
    parent: ui.screen,
    top: 0,
    left: 0,
    width: '100%',
    height: '100%',
    tags: true,
    style: { bg: 'black' },
  });
  const form = blessed.box({
    parent: box,
    top: 'center',
    left: 'center',
    width: 76,
    height: 11,
    label: ' kvmux - host administration ',
    ...DIALOG_LOOK,
  });
  let state: LineState = { text: '', max: 1024 };
  let message = notice;
  let busy = false;
  let failed = 0;
  const paint = () => {
    const msg = message ? `{yellow-fg}${escapeTags(message)}{/yellow-fg}` : '';
    form.setContent(
      `\n  Host: ${escapeTags(target)}\n\n  Password: ${'*'.repeat(state.text.length)}${busy ? '' : '_'}\n\n  ${msg}\n\n  {bold}Enter{/bold} log in    {bold}Ctrl-C{/bold} quit`,
    );
    ui.render();
  };
  return new Promise((resolve) => {
    const finish = (v: 'ok' | 'quit') => {
      pop();
      box.destroy();
      ui.render();
      resolve(v);
    };
    const submit = (password: string) => {
      busy = true;
      message = 'checking...';
      paint();
      rpc.call('auth.login', { password }).then(
        () => finish('ok'),
        (err) => {
          busy = false;
          state = { ...state, text: '' };
          failed++;
          message = `login refused (${failed} failed): ${errorText(err)}`;
          paint();
        },
      );
    };
    const pop = ui.push((ch, key) => {
      if (key === 'C-c') return finish('quit');
      if (busy) return;
      const r = editLine(state, ch, key);
      if (r.kind === 'submit') submit(r.text);
      else if (r.kind === 'edit') {
        state = r.state;
        paint();
      } else {
        state = { ...state, text: '' };
        paint();
      }
    });
    paint();
  });
}
