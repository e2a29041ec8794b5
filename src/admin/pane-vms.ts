import { errText } from '../util/errors.js';
import {
  changeMessage,
  escapeTags,
  jobShort,
  parseLimits,
  VM_HEADER,
  type VmRow,
  vmLine,
  vmRows,
} from './format.js';
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

  /** Ask for a whole number and send it as one vm.update field; the answer says live or next start. */
  const setNumber = (
    ctx: PaneCtx,
    vm: VmRow,
    field: 'memoryMiB' | 'cpus',
    label: string,
    initial: number | null,
  ) =>
    void ctx.ui
      .prompt(`${label} of ${vm.name}`, {
        initial: String(initial ?? ''),
        help: `New ${label.toLowerCase()}`,
      })
      .then((text) => {
        if (text === null) return;
        const n = Number(text);
        if (!Number.isInteger(n) || n <= 0)
          return ctx.status(`${label} "${text}" is not a whole number`, 'error');
        act(ctx, `${vm.name}: set ${label.toLowerCase()}`, async () => {
          const result = await ctx.rpc.call('vm.update', { name: vm.name, [field]: n });
          const what = field === 'memoryMiB' ? `memory set to ${n} MiB` : `CPUs set to ${n}`;
          return changeMessage(vm.name, what, result);
        });
      });

  /** Limits (cgroup): `cpu=0.5 cpuset=0 mem=256 io=200`, `none` clears; live on a running VM. */
  const setLimits = (ctx: PaneCtx, vm: VmRow) =>
    void ctx.ui
      .prompt(`Limits of ${vm.name}`, {
        initial: vm.limits
          .replace(/\bset /, 'cpuset=')
          .replace(/\b(cpu|mem|io) /g, '$1=')
          .replace(/M\b/, ''),
        help: 'cpu=CPUs cpuset=LIST mem=MiB io=1..10000 (any of them), or none',
      })
      .then((text) => {
        if (text === null) return;
        const parsed = parseLimits(text);
        if (!parsed.ok) return ctx.status(parsed.error, 'error');
        act(ctx, `${vm.name}: limits`, async () => {
          const r = (await ctx.rpc.call('vm.setResources', { name: vm.name, ...parsed.value })) as {
            live?: boolean;
          };
          return `${vm.name}: limits set${r.live ? ' (applied live)' : ' (from the next start)'}`;
        });
      });

  /** Save, restore and migrate run long: the row shows their progress while they go. */
  const job = (ctx: PaneCtx, vm: VmRow, method: string, params: object, what: string) =>
    act(ctx, `${vm.name}: ${what}`, async () => {
      const r = await ctx.rpc.call(method, { name: vm.name, ...params });
      return `${vm.name}: ${jobShort((r as { job?: unknown }).job) || `${what} done`}`;
    });

  /**
   * Where a migration stream goes (or comes from), then its key: the same at both ends, none only
   * over a private link. Null when the person backs out of either.
   */
  const askStream = async (ctx: PaneCtx, title: string, help: string) => {
    const channel = (await ctx.ui.prompt(title, { help }))?.trim();
    if (!channel) return null;
    // shown as stars: the admin screen is an X display (and a guest's terminal, remotely)
    const key = await ctx.ui.prompt('Stream key', {
      censor: true,
      help: 'the same 16+ characters at both ends (empty: none, for a private link only)',
    });
    if (key === null) return null;
    return { channel, ...(key.trim() ? { key: key.trim() } : {}) };
  };

  const migrate = (ctx: PaneCtx, vm: VmRow) =>
    void askStream(
      ctx,
      `Migrate ${vm.name} to`,
      'tcp:HOST:PORT or unix:/path of a kvmux that runs vm.receive',
    ).then((s) => {
      if (s) job(ctx, vm, 'vm.migrate', { to: s.channel, ...(s.key ? { key: s.key } : {}) }, 'migrate');
    });

  /** This host takes a VM migrated from another: the stopped VM starts waiting for its stream. */
  const receive = (ctx: PaneCtx, vm: VmRow) =>
    void askStream(
      ctx,
      `Receive ${vm.name} on`,
      'tcp:HOST:PORT or unix:/path to listen on (the VM must be stopped)',
    ).then((s) => {
      if (!s) return;
      act(ctx, `${vm.name}: receive`, async () => {
        await ctx.rpc.call('vm.receive', {
          name: vm.name,
          from: s.channel,
          ...(s.key ? { key: s.key } : {}),
        });
        return `${vm.name}: waiting for its stream on ${s.channel}${s.key ? ' (keyed)' : ''}`;
      });
    });

  /** A VM from an image found in the image folders (config.get lists them). */
  const create = (ctx: PaneCtx) =>
    void (async () => {
      const { found } = (await ctx.rpc.call('config.get', {})) as {
        found: Array<{ name: string; disk: string }>;
      };
      const list = found.map((f, i) => `${i + 1}) ${f.name}`).join('  ');
      const pick = await ctx.ui.prompt('New VM from an image', {
        help: found.length ? `Image number or file name: ${list}` : 'Image file name in an image folder',
      });
      if (pick === null || pick.trim() === '') return;
      const image = found[Number(pick) - 1];
      const disk = image?.disk ?? pick.trim();
      const name = await ctx.ui.prompt('Name of the new VM', { initial: image?.name ?? '' });
      if (name === null) return;
      act(ctx, `create ${name}`, async () => {
        await ctx.rpc.call('vm.create', { name, disk, autostart: false });
        return `${name}: created (stopped; s starts it)`;
      });
    })().catch((err: unknown) => ctx.status(`create: ${String(err)}`, 'error'));

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
    m: (ctx, vm) => setNumber(ctx, vm, 'memoryMiB', 'Memory', vm.memoryMiB),
    c: (ctx, vm) => setNumber(ctx, vm, 'cpus', 'CPUs', vm.cpus),
    a: (ctx, vm) =>
      act(ctx, `${vm.name}: autostart`, async () => {
        const on = !(vm.autostart ?? false);
        await ctx.rpc.call('vm.update', { name: vm.name, autostart: on });
        return `${vm.name}: autostart ${on ? 'on' : 'off'}`;
      }),
    d: (ctx, vm) =>
      confirmed(ctx, `Delete VM ${vm.name}? Its disk image is kept.`, `${vm.name}: delete`, 'vm.delete', {
        name: vm.name,
      }),
    l: (ctx, vm) => setLimits(ctx, vm),
    h: (ctx, vm) =>
      act(ctx, `${vm.name}: hibernate`, () =>
        called(ctx, 'vm.hibernate', vm.name, `${vm.name}: hibernated (s wakes it)`),
      ),
    v: (ctx, vm) =>
      confirmed(ctx, `Save ${vm.name} to disk and stop it?`, `${vm.name}: save`, 'vm.save', {
        name: vm.name,
      }),
    o: (ctx, vm) => job(ctx, vm, 'vm.restore', {}, 'restore'),
    g: (ctx, vm) => migrate(ctx, vm),
    i: (ctx, vm) => receive(ctx, vm),
    w: (ctx, vm) =>
      act(ctx, `switch to ${vm.name}`, () =>
        called(ctx, 'display.switch', vm.name, `switched to ${vm.name}`),
      ),
  };

  return {
    title: 'Virtual machines',
    hint: 'Up/Down  s start  t stop  f force  r restart  m memory  c cpus  l limits  h hibernate  v save  o restore  g migrate  i receive  a autostart  n new  d delete  w switch',
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
      if (ch === 'n') {
        create(ctx);
        return true;
      }
      const verb = ch ? VERBS[ch] : undefined;
      if (!verb) return false;
      withVm(ctx, (vm) => verb(ctx, vm));
      return true;
    },
  };
}
