import { BOOT_DIR } from './layout.js';

/** A file the build writes into the root tree (path absolute inside the image). */
export interface TreeFile {
  path: string;
  content: string;
  mode: number;
}
/** A symlink the build makes inside the root tree (a systemd enable or mask). */
export interface TreeLink {
  path: string;
  target: string;
}

/**
 * Runs as kvmux.service's ExecStartPost: waits for the service to say `consoleReady` (control socket
 * up, keyboard grabbed, the first display on screen; the other displays and VMs may still be
 * starting), prints "kvmux ready" on ttyS0 (the serial log) and resets this slot's boot counter:
 * the slot is good. Not every VM: one broken VM must not make the A/B counter roll the host back.
 */
export const READY_SCRIPT = `#!/bin/sh
B=${BOOT_DIR}
slot=$(head -c 1 $B/current 2>/dev/null)
i=0
while [ $i -lt 1200 ]; do
  if /usr/local/bin/kvmux ctl service.status 2>/dev/null | grep -Eq '"consoleReady": ?true'; then
    if [ -n "$slot" ] && mountpoint -q $B; then
      echo 0 > $B/.tries-$slot.tmp && sync && mv $B/.tries-$slot.tmp $B/tries-$slot && sync
    fi
    echo "kvmux ready (slot \${slot:-?})" > /dev/ttyS0 2>/dev/null
    echo "kvmux ready (slot \${slot:-?})"
    exit 0
  fi
  i=$((i + 1))
  sleep 1
done
echo "kvmux not ready after 1200 s" >&2
exit 1
`;

/**
 * TEST IMAGES ONLY (`--test-probe`): a root command loop on ttyS1, the test's second serial port,
 * so a console end-to-end test can read what only the host knows (active VT, the keyboard's LEDs,
 * kvmux's pid), kill kvmux, and print logs when a boot goes wrong (`run CMD`). Never in an image for a real box: it is a root shell by another name.
 */
export const PROBE_SCRIPT = `#!/bin/sh
tty=/dev/ttyS1
stty -F $tty raw -echo 115200 2>/dev/null
modprobe input_leds 2>/dev/null
exec <$tty >$tty 2>&1
while read -r cmd arg; do
  case "$cmd" in
    state)
      leds=$(for f in /sys/class/leds/*::scrolllock/brightness; do cat "$f" 2>/dev/null; done | tr '\\n' ' ')
      echo "STATE vt=$(cat /sys/class/tty/tty0/active) scrolllock=[$leds] kvmux=$(systemctl show -p MainPID --value kvmux.service) xorg=$(pidof Xorg | wc -w) restarts=$(systemctl show -p NRestarts --value kvmux.service) uptime=$(cut -d' ' -f1 /proc/uptime)";;
    kill9) pid=$(systemctl show -p MainPID --value kvmux.service); kill -9 "$pid"; echo "KILLED $pid";;
    ctl) echo "CTL $(/usr/local/bin/kvmux ctl $arg 2>&1 | tr '\\n' ' ')";;
    run) { sh -c "$arg" 2>&1; echo "rc=$?"; } | sed 's/^/OUT /'; echo END;;
    *) echo "UNKNOWN $cmd";;
  esac
done
`;

/** What makes a Debian root an appliance: the unit, its ready hook, the kiosk settings. */
export function applianceFiles(
  unitText: string,
  opts: { testProbe?: boolean } = {},
): { files: TreeFile[]; links: TreeLink[] } {
  const files: TreeFile[] = [
    { path: '/etc/systemd/system/kvmux.service', content: unitText, mode: 0o644 },
    {
      path: '/etc/systemd/system/kvmux.service.d/appliance.conf',
      content: `[Service]
Environment=PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
# no separate \`kvmux check\`: \`kvmux run\` refuses a bad config with the same message, and a second
# Node start costs ~50 s of boot under software emulation
ExecStartPre=
# the first start under software emulation takes long; the ready hook never fails the service
TimeoutStartSec=infinity
ExecStartPost=-/usr/lib/kvmux/appliance-ready
# a headless box logs somewhere: kvmux's JSON log lines also go to the serial console
StandardError=journal+console
`,
      mode: 0o644,
    },
    { path: '/usr/lib/kvmux/appliance-ready', content: READY_SCRIPT, mode: 0o755 },
    {
      path: '/etc/sysctl.d/90-kvmux.conf',
      // kvmux's input thread runs SCHED_RR: the RT budget stays capped (95% of each period), so
      // even a runaway RT thread leaves the X servers and VMs their share
      content: 'kernel.sysrq = 0\nkernel.sched_rt_period_us = 1000000\nkernel.sched_rt_runtime_us = 950000\n',
      mode: 0o644,
    },
    { path: '/etc/hostname', content: 'kvmux\n', mode: 0o644 },
    { path: '/etc/fstab', content: '# mounts come from the kvmux initrd (boot, slots, data)\n', mode: 0o644 },
    {
      path: '/etc/systemd/logind.conf.d/90-kvmux.conf',
      content: "[Login]\n# no login prompt on any VT: the console is kvmux's\nNAutoVTs=0\nReserveVT=0\n",
      mode: 0o644,
    },
    {
      path: '/etc/systemd/journald.conf.d/90-kvmux.conf',
      content: '[Journal]\nStorage=volatile\nRuntimeMaxUse=32M\n',
      mode: 0o644,
    },
    {
      path: '/etc/systemd/system.conf.d/90-kvmux.conf',
      content:
        '[Manager]\n# boot status on the serial console only; tty1 keeps the splash until Xorg takes over\nShowStatus=no\nCtrlAltDelBurstAction=none\n',
      mode: 0o644,
    },
  ];
  const links: TreeLink[] = [
    {
      path: '/etc/systemd/system/multi-user.target.wants/kvmux.service',
      target: '/etc/systemd/system/kvmux.service',
    },
    { path: '/etc/systemd/system/default.target', target: '/lib/systemd/system/multi-user.target' },
    // a bare VT must never reboot the host, nor offer a login
    { path: '/etc/systemd/system/ctrl-alt-del.target', target: '/dev/null' },
    { path: '/etc/systemd/system/getty@.service', target: '/dev/null' },
    { path: '/etc/systemd/system/autovt@.service', target: '/dev/null' },
    { path: '/etc/systemd/system/serial-getty@.service', target: '/dev/null' },
    { path: '/etc/systemd/system/getty.target', target: '/dev/null' },
    // no background maintenance on a kiosk: nothing to download updates with, nothing to scrub
    ...['apt-daily.timer', 'apt-daily-upgrade.timer', 'e2scrub_all.timer', 'dpkg-db-backup.timer'].map(
      (u) => ({
        path: `/etc/systemd/system/${u}`,
        target: '/dev/null',
      }),
    ),
  ];
  if (opts.testProbe) {
    files.push({ path: '/usr/lib/kvmux/test-probe', content: PROBE_SCRIPT, mode: 0o755 });
    files.push({
      path: '/etc/systemd/system/kvmux-test-probe.service',
      content:
        '[Unit]\nDescription=kvmux TEST probe on ttyS1 (test images only)\nStartLimitIntervalSec=0\n[Service]\nExecStart=/usr/lib/kvmux/test-probe\nRestart=always\nRestartSec=2\n[Install]\nWantedBy=multi-user.target\n',
      mode: 0o644,
    });
    links.push({
      path: '/etc/systemd/system/multi-user.target.wants/kvmux-test-probe.service',
      target: '/etc/systemd/system/kvmux-test-probe.service',
    });
  }
  return { files, links };
}
