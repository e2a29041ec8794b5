#!/usr/bin/env node
// Run after `npm install` changes the lock: `node scripts/lock-platform-stubs.mjs`.
// Adds lock entries for optional per-platform packages this registry does not serve, so `npm ci`
// accepts the lock; npm skips them at install time by os/cpu, so nothing is fetched.
import { readFileSync, writeFileSync } from 'node:fs';
const lock = JSON.parse(readFileSync('package-lock.json', 'utf8'));
const pk = lock.packages;
const osOf = (n) => (/darwin/.test(n) ? 'darwin' : /win32/.test(n) ? 'win32' : /android/.test(n) ? 'android' : /freebsd/.test(n) ? 'freebsd' : /openbsd/.test(n) ? 'openbsd' : /openharmony/.test(n) ? 'openharmony' : /sunos/.test(n) ? 'sunos' : /aix/.test(n) ? 'aix' : /netbsd/.test(n) ? 'netbsd' : /linux/.test(n) ? 'linux' : null);
const cpuOf = (n) => { const m = /(arm64|x64|ia32|arm|loong64|ppc64|riscv64|s390x|mips64el|wasm32)/.exec(n.split('/').pop().replace(/gnueabihf|musleabihf/, '')); return m ? m[1] : null; };
let added = 0;
for (const [path, meta] of Object.entries(pk)) {
  for (const [dep, ver] of Object.entries(meta.optionalDependencies ?? {})) {
    const key = `node_modules/${dep}`;
    if (pk[key] || pk[`${path}/node_modules/${dep}`]) continue;
    const os = osOf(dep), cpu = cpuOf(dep);
    if (!os) { console.error('no os for', dep); continue; }
    const entry = { version: ver, optional: true, os: [os] };
    if (cpu) entry.cpu = [cpu];
    if (/musl/.test(dep)) entry.libc = ['musl'];
    else if (/gnu/.test(dep)) entry.libc = ['glibc'];
    pk[key] = entry; added++;
  }
}
lock.packages = Object.fromEntries(Object.entries(pk).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b))));
writeFileSync('package-lock.json', JSON.stringify(lock, null, 2) + '\n');
console.log('added', added);
