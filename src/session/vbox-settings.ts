import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { VmConfig } from '../config/schema.js';
import { nameFromFile } from './images.js';

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** The machine name inside a VirtualBox `.vbox` settings file (what VBoxManage knows it by). */
export function vboxMachineName(settingsFile: string): string | null {
  let text: string;
  try {
    text = readFileSync(settingsFile, 'utf8').slice(0, 65536);
  } catch {
    return null;
  }
  const m = /<Machine\s[^>]*?\bname="([^"]*)"/.exec(text);
  return m?.[1] ? m[1].replace(/&(amp|lt|gt|quot|apos);/g, (_, e: string) => ENTITIES[e] ?? '') : null;
}

/**
 * A VM found from a `.vbox` file in an image folder gets that file as its settings (so it is
 * registered at its first start) and VirtualBox's own machine name, unless its sidecar set them.
 */
export function withVboxSettings(vm: VmConfig, imageDirs: readonly string[]): VmConfig {
  const v = vm.virtualbox;
  if (vm.backend !== 'virtualbox' || v?.settingsFile || v?.disk) return vm;
  for (const dir of imageDirs) {
    let files: string[];
    try {
      files = readdirSync(dir).filter((f) => /\.vbox$/i.test(f));
    } catch {
      continue;
    }
    const file = files.find((f) => nameFromFile(f) === vm.name || nameFromFile(f) === v?.vmName);
    if (!file) continue;
    const settingsFile = join(resolve(dir), file);
    const machine = vboxMachineName(settingsFile);
    const vmName = v?.vmName && v.vmName !== vm.name ? v.vmName : (machine ?? v?.vmName ?? vm.name);
    return { ...vm, virtualbox: { ...v, vmName, settingsFile } };
  }
  return vm;
}
