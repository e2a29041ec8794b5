import { existsSync } from 'node:fs';
import { loadConfigFile, resolveConfigPath } from '../config/config.js';
import { EV, keyName, REL, SYN_REPORT } from '../input/codes.js';
import type { InputEvent } from '../input/event.js';
import { pipelineOptions } from '../input/from-config.js';
import { type Decision, InputPipeline, type PipelineOptions } from '../input/pipeline.js';
import type { DisplaySink } from '../input/sink.js';
import { InputSources } from '../input/sources.js';
import { createLogger } from '../util/log.js';

/**
 * `kvmux monitor`: prints decoded input events and the hotkey/guard/router decisions live, like
 * keyd's monitor. Never grabs, so the console keeps working while it runs.
 */
const TYPE_NAMES: Readonly<Record<number, string>> = {
  0: 'SYN',
  1: 'KEY',
  2: 'REL',
  3: 'ABS',
  4: 'MSC',
  17: 'LED',
  20: 'REP',
};
const VALUE_NAMES = ['up', 'down', 'repeat'];
const REL_NAMES: Readonly<Record<number, string>> = {
  [REL.X]: 'x',
  [REL.Y]: 'y',
  [REL.WHEEL]: 'wheel',
  [REL.HWHEEL]: 'hwheel',
};

export function describeEvent(ev: InputEvent): string {
  const type = TYPE_NAMES[ev.type] ?? `type${ev.type}`;
  if (ev.type === EV.KEY) return `${type} ${keyName(ev.code)} ${VALUE_NAMES[ev.value] ?? ev.value}`;
  if (ev.type === EV.REL) return `${type} ${REL_NAMES[ev.code] ?? ev.code} ${ev.value}`;
  return `${type} ${ev.code} ${ev.value}`;
}

function printer(write: (s: string) => void): DisplaySink {
  return {
    key: (code, down) => write(`  -> to vm: ${keyName(code)} ${down ? 'down' : 'up'}`),
    button: (b, down) => write(`  -> to vm: button ${b} ${down ? 'down' : 'up'}`),
    moveRelative: (dx, dy) => write(`  -> to vm: move ${dx} ${dy}`),
    moveAbsolute: (fx, fy) => write(`  -> to vm: abs ${fx.toFixed(3)} ${fy.toFixed(3)}`),
    flush: () => {},
  };
}

/** Devices from --device, else the config's; hotkey/guard settings from the config when there is one. */
function settingsFrom(opts: { config?: string; device?: string[] }): {
  devices: 'auto' | string[];
  pipeline: PipelineOptions;
} {
  const path = resolveConfigPath(opts.config);
  const input = existsSync(path) || opts.config ? loadConfigFile(path).input : undefined;
  const pipeline = input ? pipelineOptions(input) : { windowMs: 500, ctrlAltDelToVm: true };
  return { devices: opts.device?.length ? opts.device : (input?.devices ?? 'auto'), pipeline };
}

export default async function monitor(opts: { config?: string; device?: string[] }): Promise<number> {
  const write = (s: string) => process.stdout.write(`${s}\n`);
  const { devices, pipeline: pipelineOpts } = settingsFrom(opts);
  const t0 = performance.now();
  let pipeline: InputPipeline;
  const decide = (d: Decision) => {
    if (d.stage === 'hotkey' || d.stage === 'guard') write(`  -> ${d.stage}: ${d.what}`);
  };
  pipeline = new InputPipeline(pipelineOpts, {
    sinkFor: () => printer(write),
    onMenuOpen: () => {
      pipeline.setMenuOpen(true);
      write('  -> MENU OPEN (Esc or Scroll Lock closes it here)');
    },
    onDirectSwitch: (n) => {
      pipeline.setMenuOpen(false);
      write(`  -> SWITCH to display ${n}`);
    },
    onCycle: (delta) => {
      pipeline.setMenuOpen(false);
      write(`  -> SWITCH to the ${delta > 0 ? 'next' : 'previous'} display`);
    },
    onMenuInput: (ev) => {
      write(`  -> menu: ${describeEvent(ev)}`);
      if (
        ev.type === EV.KEY &&
        ev.value === 1 &&
        (keyName(ev.code) === 'esc' || keyName(ev.code) === 'scrolllock')
      ) {
        pipeline.setMenuOpen(false);
        write('  -> menu closed');
      }
    },
    onDecision: decide,
  });
  pipeline.setActive('vm');
  const sources = new InputSources(
    { devices, grab: false, log: createLogger({ name: 'kvmux-monitor' }) },
    {
      feed: (ev) => {
        if (!(ev.type === EV.SYN && ev.code === SYN_REPORT) && ev.type !== EV.MSC)
          write(`${((performance.now() - t0) / 1000).toFixed(3)} ${ev.source ?? ''} ${describeEvent(ev)}`);
        pipeline.feed(ev);
      },
      setAbsRange: (s, x, y, pad) => pipeline.setAbsRange(s, x, y, pad),
    },
  );
  sources.start();
  write(`monitoring ${devices === 'auto' ? 'all input devices (auto)' : devices.join(', ')}; Ctrl+C stops`);
  for (const s of sources.list()) write(`  ${s.kind} ${s.path} ${s.name}`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  sources.close();
  pipeline.close();
  return 0;
}
