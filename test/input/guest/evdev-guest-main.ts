import { constants, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { EV, LED, REL } from '../../../src/input/codes.js';
import { EvdevDevice } from '../../../src/input/evdev.js';
import { InputPipeline } from '../../../src/input/pipeline.js';
import { RecordingDisplays } from '../../../src/input/recording-sink.js';
import { InputSources } from '../../../src/input/sources.js';
import { createLogger } from '../../../src/util/log.js';
import { UinputDevice } from './uinput.js';

/**
 * Runs INSIDE a Linux guest (the host has no /dev/input): drives the real evdev binding against
 * uinput devices and prints one `CHECK ok|FAIL name detail` line per outcome for the host test.
 */
const check = (name: string, ok: boolean, detail: unknown = '') =>
  console.log(`CHECK ${ok ? 'ok' : 'FAIL'} ${name} ${JSON.stringify(detail)}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms = 10_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(10)) if (cond()) return true;
  return cond();
}

/** /dev/input/eventN of the device with this name (sysfs, no udev in the guest). */
function nodeOf(name: string): string | undefined {
  for (const ev of readdirSync('/sys/class/input').filter((n) => n.startsWith('event'))) {
    const devName = readFileSync(`/sys/class/input/${ev}/device/name`, 'utf8').trim();
    if (devName === name) return `/dev/input/${ev}`;
  }
  return undefined;
}

const KEYS = Array.from({ length: 120 }, (_, i) => i + 1);
const kbd = new UinputDevice({ name: 'test keyboard', keys: KEYS, leds: [LED.NUML, LED.CAPSL, LED.SCROLLL] });
const mouse = new UinputDevice({
  name: 'test mouse',
  keys: [0x110, 0x111, 0x112],
  rel: [REL.X, REL.Y, REL.WHEEL],
});
const own = new UinputDevice({ name: 'kvmux virtual keyboard', keys: KEYS });
const pad = new UinputDevice({
  name: 'test touchpad',
  keys: [0x110, 0x14a, 0x145],
  abs: [
    { axis: 0, min: 0, max: 1000 },
    { axis: 1, min: 0, max: 1000 },
  ],
  props: [0], // INPUT_PROP_POINTER
});
await until(() =>
  ['test keyboard', 'kvmux virtual keyboard', 'test touchpad'].every((n) => nodeOf(n) !== undefined),
);
const kbdPath = nodeOf('test keyboard')!;

const probe = EvdevDevice.open(kbdPath);
check('EVIOCGNAME reads the name', probe.name === 'test keyboard', probe.name);
check(
  'EVIOCGBIT classifies a keyboard with LEDs',
  probe.cls.keyboard && probe.cls.leds && !probe.cls.pointer,
  probe.cls,
);
kbd.emit([EV.KEY, 30, 1]); // `a` held before kvmux starts
await sleep(50);
check('EVIOCGKEY sees the held key', probe.keysDown().join() === '30', probe.keysDown());

const rec = new RecordingDisplays(['alpha']);
const menu: string[] = [];
const pipeline = new InputPipeline(
  { windowMs: 500, ctrlAltDelToVm: true },
  {
    sinkFor: (d) => rec.sinkFor(d),
    onMenuOpen: () => menu.push('menu open'),
    onDirectSwitch: () => {},
    onCycle: () => {},
    onMenuInput: () => {},
  },
);
pipeline.setActive('alpha');
const sources = new InputSources({ devices: 'auto' }, pipeline);
sources.start();
const info = () => sources.list();
const byName = (n: string) => info().find((s) => s.name === n);
check(
  'auto mode opens the keyboard, mouse and QEMU PS/2 keyboard',
  !!byName('test keyboard') && !!byName('test mouse') && !!byName('AT Translated Set 2 keyboard'),
  info(),
);
check(
  'auto mode never opens kvmux’s own device',
  !byName('kvmux virtual keyboard'),
  info().map((s) => s.name),
);
check('no grab while a key is down', byName('test keyboard')?.grabbed === false, byName('test keyboard'));
check(
  'the mouse (no key down) is grabbed at once',
  byName('test mouse')?.grabbed === true,
  byName('test mouse'),
);

check(
  'EVIOCGPROP makes the touchpad a touchpad',
  byName('test touchpad') !== undefined &&
    EvdevDevice.open(nodeOf('test touchpad')!).cls.pointer === 'touchpad',
  info(),
);
pad.emit([EV.KEY, 0x145, 1], [EV.KEY, 0x14a, 1], [EV.ABS, 0, 100], [EV.ABS, 1, 100]);
pad.emit([EV.ABS, 0, 110], [EV.ABS, 1, 105]);
pad.emit([EV.KEY, 0x145, 0], [EV.KEY, 0x14a, 0]);
check(
  'touchpad finger motion moves the pointer relatively (EVIOCGABS range)',
  await until(() => rec.lines.includes('to alpha: move 12 6')),
  rec.lines,
);
check('touchpad contact is not a click', !rec.lines.some((l) => l.includes('button')), rec.lines);
rec.take();

kbd.emit([EV.KEY, 30, 0]);
check(
  'grabbed once every key is up',
  await until(() => byName('test keyboard')?.grabbed === true),
  byName('test keyboard'),
);

const spy = openSync(kbdPath, constants.O_RDONLY | constants.O_NONBLOCK);
const spyRead = () => {
  try {
    return readSync(spy, Buffer.alloc(24 * 64));
  } catch {
    return 0;
  }
};
spyRead();
kbd.emit([EV.KEY, 48, 1]);
kbd.emit([EV.KEY, 48, 0]);
check('grabbed keys reach the pipeline', await until(() => rec.lines.includes('to alpha: b up')), rec.lines);
check('the grab is exclusive: another reader gets nothing', spyRead() === 0);

mouse.emit([EV.REL, REL.X, 5], [EV.REL, REL.Y, -3]);
mouse.emit([EV.KEY, 0x110, 1]);
mouse.emit([EV.KEY, 0x110, 0]);
check(
  'pointer events are routed',
  (await until(() => rec.lines.includes('to alpha: button 1 up'))) &&
    rec.lines.includes('to alpha: move 5 -3'),
  rec.lines,
);

for (const v of [1, 0, 1, 0]) kbd.emit([EV.KEY, 70, v]);
check('a double Scroll Lock on a real device opens the menu', await until(() => menu.length === 1), menu);
check('no Scroll Lock reached the display', !rec.lines.some((l) => l.includes('scrolllock')), rec.lines);
pipeline.setMenuOpen(false);

kbd.readBack();
sources.setLeds(0b101);
const back = await (async () => {
  await sleep(50);
  return kbd.readBack().filter((e) => e.type === EV.LED);
})();
check(
  'LED write reaches the device',
  back.some((e) => e.code === LED.NUML && e.value === 1) &&
    back.some((e) => e.code === LED.SCROLLL && e.value === 1),
  back,
);
check('EVIOCGLED reads the lit LEDs back', probe.leds() === 0b101, probe.leds());

const late = new UinputDevice({ name: 'late keyboard', keys: KEYS });
check(
  'hotplug: a new keyboard is opened',
  await until(() => !!byName('late keyboard')),
  info().map((s) => s.name),
);
late.emit([EV.KEY, 46, 1]);
late.emit([EV.KEY, 46, 0]);
check(
  'hotplugged keyboard feeds the pipeline',
  await until(() => rec.lines.includes('to alpha: c up')),
  rec.lines,
);
late.destroy();
check(
  'hotplug: a vanished keyboard is closed',
  await until(() => !byName('late keyboard')),
  info().map((s) => s.name),
);

sources.close();
spyRead();
kbd.emit([EV.KEY, 32, 1]);
await sleep(50);
check('close() releases the grab: others read again', spyRead() > 0);

// Configured paths (not auto): the auto-mode sources above are closed, so nothing else grabs.
const replugName = 'replug keyboard';
let replug = new UinputDevice({ name: replugName, keys: KEYS });
await until(() => nodeOf(replugName) !== undefined);
const replugPath = nodeOf(replugName)!;
const seen: string[] = [];
const configured = new InputSources(
  { devices: [replugPath], log: createLogger({ name: 'configured', level: 'debug' }) },
  { feed: (ev) => ev.type === EV.KEY && seen.push(`${ev.code}:${ev.value}`) },
);
configured.start();
replug.emit([EV.KEY, 16, 1]);
check(
  'a configured device path is read and grabbed',
  (await until(() => seen.includes('16:1'))) && configured.list()[0]?.grabbed === true,
  configured.list(),
);
replug.destroy();
check(
  'a configured device that vanishes is closed',
  await until(() => configured.list().length === 0),
  configured.list(),
);
replug = new UinputDevice({ name: replugName, keys: KEYS });
await until(() => nodeOf(replugName) !== undefined);
check('the replugged device gets the same node', nodeOf(replugName) === replugPath, nodeOf(replugName));
check(
  'a configured device is reopened when it comes back',
  await until(() => configured.list().length === 1),
  configured.list(),
);
replug.emit([EV.KEY, 17, 1]);
check('the reopened device feeds again', await until(() => seen.includes('17:1')), seen);
configured.close();
replug.destroy();

probe.close();
pipeline.close();
for (const d of [kbd, mouse, own, pad]) d.destroy();
console.log('GUEST-CHECKS-END');
process.exit(0);
