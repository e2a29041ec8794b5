import blessed from 'blessed';
import { escapeTags } from './format.js';
import { type AdminRpc, errorText } from './rpc.js';
import { DIALOG_LOOK, type Ui } from './ui.js';

/**
 * First boot, on the console: no password is set yet. Asks for the password twice, shows the
 * host phrase (keep it or type another), and offers the images found as the first VM. Every
 * step is a control call (auth.passwd, menu.phrase, vm.create), so it is audited like the rest.
 */
interface Found {
  readonly name: string;
  readonly disk: string;
}

function background(ui: Ui, found: readonly Found[]): blessed.Widgets.BoxElement {
  const box = blessed.box({ parent: ui.screen, top: 0, left: 0, width: '100%', height: '100%', tags: true });
  const list =
    found.length === 0
      ? '  No disk images were found in the image folders.'
      : found.map((f, i) => `  ${i + 1}) ${escapeTags(f.name)}   ${escapeTags(f.disk)}`).join('\n');
  blessed.box({
    parent: box,
    top: 1,
    left: 'center',
    width: '90%',
    height: found.length + 8,
    label: ' kvmux - first start ',
    ...DIALOG_LOOK,
    content:
      '\n  Welcome. This host has no admin password yet: set one, check the host phrase that the\n' +
      '  trusted menu shows, and make a first VM from the images found:\n\n' +
      list,
  });
  ui.render();
  return box;
}

/** Password twice until both match and the service takes it; null when cancelled. */
async function askPassword(ui: Ui, rpc: AdminRpc, notice: string): Promise<string | null> {
  let help = notice || 'At least 1 character. It unlocks this screen and guest channels.';
  for (;;) {
    const first = await ui.prompt('New host password', { censor: true, help });
    if (first === null) return null;
    const again = await ui.prompt('Repeat the password', { censor: true, help: 'Type it once more.' });
    if (again === null) return null;
    if (first !== again) {
      help = 'The two entries differed. Try again.';
      continue;
    }
    try {
      await rpc.call('auth.passwd', { new: first });
      return first;
    } catch (err) {
      help = `Not accepted: ${errorText(err)}`;
    }
  }
}

async function askPhrase(ui: Ui, rpc: AdminRpc): Promise<string> {
  const { phrase } = (await rpc.call('menu.phrase', {})) as { phrase: string };
  let help = 'Shown in the switcher menu so a guest cannot fake it. Enter keeps it.';
  for (;;) {
    const text = await ui.prompt('Host phrase', { initial: phrase, help });
    if (text === null || text.trim() === phrase) return '';
    try {
      await rpc.call('menu.phrase', { phrase: text });
      return ` Host phrase set.`;
    } catch (err) {
      help = `Not accepted: ${errorText(err)}`;
    }
  }
}

async function askFirstVm(ui: Ui, rpc: AdminRpc, found: readonly Found[]): Promise<string> {
  if (found.length === 0) return '';
  let help = `1-${found.length}, or Enter for none (the VMs screen can do it later).`;
  for (;;) {
    const pick = await ui.prompt('Image for the first VM', { help });
    if (pick === null || pick.trim() === '') return '';
    const image = found[Number(pick) - 1];
    if (!Number.isInteger(Number(pick)) || !image) {
      help = `"${pick}" is not one of 1-${found.length}.`;
      continue;
    }
    const name = await ui.prompt('Name of the VM', {
      initial: image.name,
      help: 'Lower-case letters, digits and -',
    });
    if (name === null) continue;
    const autostart = await ui.confirm(`Start ${name} now and at every boot?`);
    try {
      await rpc.call('vm.create', { name, disk: image.disk, autostart });
      return ` VM ${name} created.`;
    } catch (err) {
      help = `Not created: ${errorText(err)}`;
    }
  }
}

/**
 * Runs the setup when no password is set; returns a notice for the next screen, or null when there
 * was nothing to do. `notice` (a cancelled setup's) is shown with the first question.
 */
export async function firstBootSetup(ui: Ui, rpc: AdminRpc, notice = ''): Promise<string | null> {
  const status = (await rpc.call('auth.status', {}).catch(() => ({ passwordSet: true }))) as {
    passwordSet: boolean;
  };
  if (status.passwordSet) return null;
  const cfg = (await rpc.call('config.get', {})) as { found: Found[] };
  const box = background(ui, cfg.found);
  try {
    if ((await askPassword(ui, rpc, notice)) === null)
      return 'Setup cancelled: no password is set yet, and this screen needs one.';
    const phrase = await askPhrase(ui, rpc);
    const vm = await askFirstVm(ui, rpc, cfg.found);
    return `Password set.${phrase}${vm}`;
  } finally {
    box.destroy();
    ui.render();
  }
}
