import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { parseChords } from '../../src/input/chord.js';
import { EV, keyCode } from '../../src/input/codes.js';
import { InputPipeline } from '../../src/input/pipeline.js';
import { RecordingDisplays } from '../../src/input/recording-sink.js';
import { createCommandBackend } from '../../src/session/backends/command.js';
import { createQemuBackend } from '../../src/session/backends/qemu.js';
import { createVirtualboxBackend } from '../../src/session/backends/virtualbox.js';
import { Supervisor } from '../../src/session/supervisor.js';
import { tempDir } from '../helpers/temp.js';

describe('backend host keys', () => {
  it("qemu's parse for the guard and cover the monitor console switch, grab, full-screen, quit and zoom", () => {
    const texts = parseChords(createQemuBackend().hostKeys).map((c) => c.text);
    for (const key of ['1', '2', '9', 'g', 'f', 'q', 'u', 'equal', 'minus'])
      expect(texts, `alt+ctrl+${key}`).toContain(`alt+ctrl+${key}`);
  });
});

describe('vms[].blockedKeys', () => {
  /** Supervisor.hostKeys → pipeline.setExtraBlocked, as `kvmux run` wires them. */
  function wired() {
    const dir = tempDir('kvmux-blocked-keys-');
    const config = configSchema.parse({
      runDir: `${dir}/run`,
      stateDir: `${dir}/state`,
      vms: [
        { name: 'notes', backend: 'command', command: ['xterm'], blockedKeys: ['ctrl+t', 'Meta+L'] },
        { name: 'win', backend: 'qemu', qemu: { disk: '/x.img' }, blockedKeys: ['ctrl+shift+escape'] },
        { name: 'plain', backend: 'command', command: ['xterm'] },
      ],
    });
    const sup = new Supervisor({
      config,
      backends: {
        command: createCommandBackend(),
        qemu: createQemuBackend(),
        virtualbox: createVirtualboxBackend(),
      },
      displayFor: () => ({ display: ':139', width: 1024, height: 768 }),
    });
    const sinks = new RecordingDisplays(['notes', 'win', 'plain']);
    const p = new InputPipeline(
      { windowMs: 500, ctrlAltDelToVm: true },
      {
        sinkFor: (d) => sinks.sinkFor(d),
        onMenuOpen: () => {},
        onDirectSwitch: () => {},
        onCycle: () => {},
        onMenuInput: () => {},
      },
    );
    for (const vm of config.vms) p.setExtraBlocked(vm.name, sup.hostKeys(vm.name));
    return { sup, p, sinks };
  }

  function type(p: InputPipeline, mods: string[], key: string): void {
    const send = (name: string, value: number) =>
      p.feed({ type: EV.KEY, code: keyCode(name)!, value, timeMs: 0 });
    for (const m of mods) send(m, 1);
    send(key, 1);
    send(key, 0);
    for (const m of [...mods].reverse()) send(m, 0);
  }

  it("join the backend's host keys: qemu's own plus the VM's", () => {
    const { sup } = wired();
    expect(sup.hostKeys('notes')).toEqual(['ctrl+t', 'Meta+L']);
    expect(sup.hostKeys('win')).toEqual([...createQemuBackend().hostKeys, 'ctrl+shift+escape']);
    expect(sup.hostKeys('plain')).toEqual([]);
  });

  it("swallow the chord's key only while their VM is shown; other VMs get it", () => {
    const { p, sinks } = wired();
    for (const name of ['notes', 'plain']) {
      p.setActive(name);
      type(p, ['leftctrl'], 't');
      type(p, ['leftmeta'], 'l');
      type(p, ['leftctrl', 'leftshift'], 'esc');
    }
    p.setActive('win');
    type(p, ['leftctrl', 'leftshift'], 'esc');
    type(p, ['leftctrl', 'leftalt'], '2');
    type(p, ['leftctrl'], 't');
    // what each display got, modifiers left out
    const keys = (n: string) =>
      sinks.lines
        .filter((l) => l.startsWith(`to ${n}: `) && !/ctrl|alt|shift|meta/.test(l))
        .map((l) => l.slice(`to ${n}: `.length));
    expect(keys('notes')).toEqual(['esc down', 'esc up']);
    expect(keys('plain')).toEqual(['t down', 't up', 'l down', 'l up', 'esc down', 'esc up']);
    expect(keys('win')).toEqual(['t down', 't up']);
  });
});
