import { errText } from '../../util/errors.js';
import { escapeTags, memoryMessage, VM_HEADER, type VmRow, vmLine, vmRows } from './format.js';
import { act, moveSelection, type Pane, type PaneCtx, SEL } from './pane.js';

async function called(ctx: PaneCtx, method: string, name: string, done: string): Promise<string> {
  await ctx.rpc.call(method, { name });
  return done;
}

/** VMs: live state (polls vm.list), start / stop (graceful, force) / restart / memory / switch. */
export function vmsPane(): Pane {
  let rows: VmRow[] = [];
  let selected = 0;
  let error = '';
  const current = () => rows[selected];

  const withVm = (ctx: PaneCtx, fn: (vm: VmRow) => void) => {
    const vm = current();
    if (vm) fn(vm);
    else ctx.status('no VM selected', 'error');
  };

  const confirmed = (ctx: PaneCtx, question: string, what: string, method: string, params: object) =>
    void ctx.ui.confirm(question).then((yes) => {
      if (!yes) return ctx.status(`${what}: cancelled`, 'info');
      act(ctx, what, async () => {
        await ctx.rpc.call(method, params);
        return `${what}: done`;
      });
    });

  const setMemory = (ctx: PaneCtx, vm: VmRow) =>
    void ctx.ui
      .prompt(`Memory of ${vm.name}`, { initial: String(vm.memoryMiB ?? ''), help: 'New memory size in MiB' })
      .then((text) => {
        if (text === null) return;
        const mib = Number(text);
        if (!Number.isInteger(mib) || mib <= 0)
          return ctx.status(`memory "${text}" is not a whole number of MiB`, 'error');
        act(ctx, `${vm.name}: set memory`, async () => {
          const result = await ctx.rpc.call('vm.setMemory', { name: vm.name, memoryMiB: mib });
          return memoryMessage(vm.name, mib, result);
        });
      });

  /** Letter → action on the selected VM; one table row per verb. */
  const VERBS: Record<string, (ctx: PaneCtx, vm: VmRow) => void> = {
    s: (ctx, vm) =>
      act(ctx, `${vm.name}: start`, () => called(ctx, 'vm.start', vm.name, `${vm.name}: start requested`)),
    t: (ctx, vm) =>
      confirmed(ctx, `Shut down ${vm.name} gracefully (ACPI power button)?`, `${vm.name}: stop`, 'vm.stop', {
        name: vm.name,
      }),
    f: (ctx, vm) =>
      confirmed(
        ctx,
        `FORCE stop ${vm.name}? Unsaved guest data is lost.`,
        `${vm.name}: force stop`,
        'vm.stop',
        { name: vm.name, force: true },
      ),
    r: (ctx, vm) =>
      confirmed(ctx, `Restart ${vm.name}?`, `${vm.name}: restart`, 'vm.restart', { name: vm.name }),
    m: (ctx, vm) => setMemory(ctx, vm),
    w: (ctx, vm) =>
      act(ctx, `switch to ${vm.name}`, () =>
        called(ctx, 'display.switch', vm.name, `switched to ${vm.name}`),
      ),
  };

  return {
    title: 'Virtual machines',
    hint: 'Up/Down select  s start  t stop  f force stop  r restart  m memory  w switch to',
    pollMs: 2000,
    async load(ctx) {
      try {
        rows = vmRows(await ctx.rpc.call('vm.list'));
        error = '';
      } catch (err) {
        error = errText(err);
      }
      selected = Math.min(selected, Math.max(0, rows.length - 1));
    },
    render() {
      if (error) return `{red-fg}vm.list failed: ${escapeTags(error)}{/red-fg}`;
      if (rows.length === 0) return 'No VMs configured.';
      const lines = rows.map((r, i) => {
        const { text, colour } = vmLine(r);
        return i === selected
          ? SEL(escapeTags(text), true)
          : `{${colour}-fg}${escapeTags(text)}{/${colour}-fg}`;
      });
      return [`{bold}${VM_HEADER}{/bold}`, ...lines].join('\n');
    },
    onKey(ch, key, ctx) {
      const next = moveSelection(selected, rows.length, key);
      if (next !== undefined) {
        selected = next;
        return true;
      }
      const verb = ch ? VERBS[ch] : undefined;
      if (!verb) return false;
      withVm(ctx, (vm) => verb(ctx, vm));
      return true;
    },
  };
}
