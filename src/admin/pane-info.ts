import { escapeTags, logLines, netLines } from './format.js';
import { act, moveSelection, type Pane, SEL } from './pane.js';
import { callOptional, errorText } from './rpc.js';

/** Networks: bridges, members (taps/veths) and which VM, host addresses (must be none), drops. */
export function networksPane(): Pane {
  let lines: Array<{ text: string; colour: string }> = [];
  return {
    title: 'Networks',
    hint: 'F5 refresh',
    pollMs: 5000,
    async load(ctx) {
      try {
        const r = await callOptional(ctx.rpc, 'net.list');
        lines =
          r === undefined
            ? [{ text: 'net.list is not provided by this service', colour: 'white' }]
            : netLines(r);
      } catch (err) {
        lines = [{ text: `net.list failed: ${errorText(err)}`, colour: 'red' }];
      }
    },
    render() {
      return lines.map((l) => `{${l.colour}-fg}${escapeTags(l.text)}{/${l.colour}-fg}`).join('\n');
    },
  };
}

/** Log sources shown in the Logs pane, newest last; a missing method (-32601) is said, not fatal. */
const LOG_SOURCES: ReadonlyArray<{ title: string; method: string }> = [
  { title: 'Audit log (guest calls)', method: 'audit.tail' },
  { title: 'Service log', method: 'service.log' },
];

export function logsPane(): Pane {
  let text: string[] = [];
  return {
    title: 'Logs',
    hint: 'F5 refresh',
    async load(ctx) {
      const out: string[] = [];
      for (const src of LOG_SOURCES) {
        out.push(`{bold}${src.title}{/bold}`);
        try {
          const r = await callOptional(ctx.rpc, src.method);
          const lines =
            r === undefined ? [`(${src.method} is not provided by this service)`] : logLines(r).slice(-40);
          out.push(...lines.map((l) => escapeTags(l)), '');
        } catch (err) {
          out.push(`{red-fg}${escapeTags(`${src.method} failed: ${errorText(err)}`)}{/red-fg}`, '');
        }
      }
      text = out;
    },
    render() {
      return text.join('\n');
    },
  };
}

/** Switch the physical console to a display (display.switch), like ScrLk ScrLk <n>. */
export function switchPane(): Pane {
  let rows: Array<{ name: string; display: string; active: boolean }> = [];
  let selected = 0;
  return {
    title: 'Switch display',
    hint: 'Up/Down select  Enter switch',
    async load(ctx) {
      const r = await ctx.rpc.call('display.list').catch(() => []);
      rows = Array.isArray(r)
        ? r.map((d: { name?: unknown; display?: unknown; active?: unknown }) => ({
            name: String(d.name),
            display: String(d.display ?? ''),
            active: d.active === true,
          }))
        : [];
      selected = Math.min(selected, Math.max(0, rows.length - 1));
    },
    render() {
      if (rows.length === 0) return 'No displays.';
      return rows
        .map((d, i) =>
          SEL(
            escapeTags(
              `${i + 1}  ${d.name.padEnd(16)} ${d.display.padEnd(6)} ${d.active ? '(shown now)' : ''}`,
            ),
            i === selected,
          ),
        )
        .join('\n');
    },
    onKey(_ch, key, ctx) {
      const next = moveSelection(selected, rows.length, key);
      if (next !== undefined) selected = next;
      else if (key === 'enter' && rows[selected]) {
        const name = rows[selected]!.name;
        act(ctx, `switch to ${name}`, async () => {
          await ctx.rpc.call('display.switch', { name });
          return `switched to ${name}`;
        });
      } else return false;
      return true;
    },
  };
}
