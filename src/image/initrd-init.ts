import { BOOT_LABEL, DATA_LABEL, SLOT_LABELS } from './layout.js';

/**
 * The slot choice of the initrd, as a busybox sh library (`/lib/kvmux/slots.sh`). It is sourced by
 * /init and, in the tests, by a host busybox with stub `slot_usable`, so every case is checked
 * without booting. Inputs are files in the boot partition ($B): `next` ("a"/"b", written by
 * host.update), `tries-<slot>` (boots started since that slot last reached "kvmux ready").
 * A slot whose tries reached $TRIES is bad: it booted that often and never got ready. When both are
 * bad (say six power cuts before ready), the box must still come up: the last resort boots the
 * first slot that mounts and verifies, without counting, until one reaches ready again; there is
 * never a shell. Every fallback leaves a line in `rollback.log` for the admin screen and the log.
 */
export const SLOTS_SH = `# kvmux A/B slot choice (sourced; needs: B, TRIES, slot_usable <slot>, say <msg>)
other() { [ "$1" = a ] && echo b || echo a; }
read_slot() { s=$(cat "$1" 2>/dev/null | head -c 1); case "$s" in a|b) echo "$s";; *) echo "$2";; esac; }
read_tries() { t=$(cat "$B/tries-$1" 2>/dev/null); case "$t" in ''|*[!0-9]*) echo 0;; *) echo "$t";; esac; }
put() { echo "$2" > "$B/.$1.tmp" && sync && mv "$B/.$1.tmp" "$B/$1" && sync; }
# prints the chosen slot, or nothing when neither slot can be used
choose_slot() {
  first=$(read_slot "$B/next" a)
  for s in "$first" "$(other "$first")"; do
    t=$(read_tries "$s")
    if [ "$t" -ge "$TRIES" ]; then
      say "slot $s: bad (started $t times, never got ready)"
      continue
    fi
    if ! slot_usable "$s"; then
      say "slot $s: unusable, falling back"
      continue
    fi
    put "tries-$s" $((t + 1))
    put current "$s"
    if [ "$s" != "$first" ]; then
      put next "$s"
      say "boot pointer moved to slot $s"
      note_rollback "slot $first could not boot (started $(read_tries "$first") times without ready, or unusable): slot $s booted instead"
    fi
    echo "$s"
    return 0
  done
  # both slots used up their tries: boot the first usable one anyway, uncounted, rather than never
  for s in "$first" "$(other "$first")"; do
    slot_usable "$s" || continue
    say "both slots used up their tries: booting slot $s anyway (last resort)"
    put current "$s"
    note_rollback "both slots used up their tries: slot $s booted as a last resort"
    echo "$s"
    return 0
  done
  return 1
}
# appends one line to rollback.log on the boot partition (kept to its last 50 lines)
note_rollback() {
  { tail -n 49 "$B/rollback.log" 2>/dev/null; echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $1"; } > "$B/.rollback.tmp" &&
    sync && mv "$B/.rollback.tmp" "$B/rollback.log" && sync
}
`;

/**
 * /init of the initrd: load the storage drivers, find the kvmux boot partition (the UUID GRUB
 * passed, else the label, on any disk), pick a slot, mount its squashfs read-only under a tmpfs
 * overlay, add the data partition, move the mounts into the new root and switch_root to systemd.
 * Every step logs a line starting "kvmux-initrd:" to the console (ttyS0 with the default cmdline).
 */
export function initScript(): string {
  const [la, lb] = [SLOT_LABELS.a, SLOT_LABELS.b];
  return String.raw`#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /run /tmp
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
say() { echo "kvmux-initrd: $*" >&2; }
# never a shell: nobody at an appliance may get one (ttyS0 may be a BMC's serial-over-LAN)
fail() { say "FATAL: $*"; say "restarting in 30 s"; sleep 30; echo b > /proc/sysrq-trigger 2>/dev/null; reboot -f; while :; do sleep 60; done; }
arg() { for w in $(cat /proc/cmdline); do case "$w" in "$1="*) echo "$w" | cut -d= -f2-; return;; esac; done; echo "$2"; }
[ -e /splash.raw ] && . /lib/kvmux/splash.sh
for m in $(cat /lib/kvmux/modules.order); do insmod "$m" 2>/dev/null; done
say "drivers loaded"
TRIES=$(arg kvmux.tries 3)
VERIFY=$(arg kvmux.verify sha256)
WANT=$(arg kvmux.boot "")
label() { dd if="$1" bs=1 skip=1144 count=16 2>/dev/null | tr -d '\000'; }
magic() { dd if="$1" bs=1 skip=1080 count=2 2>/dev/null | od -An -tx1 | tr -d ' \n'; }
ext_label() { [ "$(magic "$1")" = 53ef ] && label "$1"; }
find_boot() {
  if [ -n "$WANT" ]; then d=$(findfs "$WANT" 2>/dev/null) && [ -n "$d" ] && echo "$d" && return; fi
  for p in $(awk 'NR>2 {print $4}' /proc/partitions); do
    [ "$(ext_label /dev/$p)" = ${BOOT_LABEL} ] && echo /dev/$p && return
  done
}
i=0
while :; do
  BOOTDEV=$(find_boot)
  [ -n "$BOOTDEV" ] && break
  i=$((i + 1)); [ $i -ge 300 ] && fail "no partition labelled ${BOOT_LABEL} on any disk"
  sleep 0.1
done
DISK=$(basename "$(readlink -f /sys/class/block/$(basename $BOOTDEV)/..)")
say "boot partition $BOOTDEV on disk $DISK"
on_disk() {
  for p in /sys/class/block/$DISK/$DISK*; do
    [ -e "$p/partition" ] || continue
    [ "$(ext_label /dev/$(basename $p))" = "$1" ] && echo /dev/$(basename $p) && return
  done
}
slotdev() { [ "$1" = a ] && on_disk ${la} || on_disk ${lb}; }
B=/kvmux/boot
mkdir -p $B /kvmux/slot-a /kvmux/slot-b /kvmux/lower /kvmux/rw /newroot
mount -t ext4 -o rw,noatime "$BOOTDEV" $B || fail "cannot mount $BOOTDEV"
for s in a b; do d=$(slotdev $s); [ -n "$d" ] && mount -t ext4 -o rw,noatime "$d" /kvmux/slot-$s; done
meta_field() { sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p" "/kvmux/slot-$1/meta.json" 2>/dev/null; }
slot_usable() {
  img=/kvmux/slot-$1/root.squashfs
  [ -f "$img" ] || { say "slot $1: no root.squashfs"; return 1; }
  size=$(wc -c < "$img"); want=$(meta_field $1 size)
  [ "$size" = "$want" ] || { say "slot $1: size $size, meta.json says '$want'"; return 1; }
  if [ "$VERIFY" = sha256 ]; then
    sum=$(sha256sum "$img" | cut -d' ' -f1)
    [ "$sum" = "$(meta_field $1 sha256)" ] || { say "slot $1: sha256 mismatch"; return 1; }
    say "slot $1: sha256 verified"
  fi
  mount -t squashfs -o ro "$img" /kvmux/lower 2>/dev/null || { say "slot $1: squashfs mount failed"; return 1; }
  [ -x /kvmux/lower/sbin/init ] || [ -L /kvmux/lower/sbin/init ] || { umount /kvmux/lower; say "slot $1: no /sbin/init"; return 1; }
  return 0
}
. /lib/kvmux/slots.sh
SLOT=$(choose_slot) || fail "neither slot A nor slot B can boot"
SLOT=$(echo "$SLOT" | tail -n 1)
say "root found: slot $SLOT ($(meta_field $SLOT version))"
mount -t tmpfs -o mode=0755,size=50% tmpfs /kvmux/rw
mkdir -p /kvmux/rw/upper /kvmux/rw/work
mount -t overlay overlay -o lowerdir=/kvmux/lower,upperdir=/kvmux/rw/upper,workdir=/kvmux/rw/work /newroot || fail "overlay mount failed"
say "overlay mounted: squashfs (ro) + tmpfs"
mkdir -p /newroot/boot/kvmux /newroot/data
mount --move $B /newroot/boot/kvmux
for s in a b; do
  grep -q " /kvmux/slot-$s " /proc/mounts && mkdir -p /newroot/boot/kvmux/slot-$s && mount --move /kvmux/slot-$s /newroot/boot/kvmux/slot-$s
done
DATADEV=$(on_disk ${DATA_LABEL})
if [ -n "$DATADEV" ] && mount -t ext4 -o rw,noatime "$DATADEV" /newroot/data; then
  say "data partition $DATADEV mounted on /data"
else
  say "no data partition: state lives in RAM this boot"
fi
echo "$SLOT" > /newroot/run/kvmux-slot 2>/dev/null
umount /sys /proc
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
`;
}

/**
 * Splash on the firmware framebuffer GRUB left (gfxpayload=keep): black screen, the logo centred,
 * row by row (the logo is raw BGRA, its size in /splash.size). Silently nothing without /dev/fb0.
 */
export const SPLASH_SH = `if [ -e /sys/class/graphics/fb0 ]; then
  [ -e /dev/fb0 ] || mknod /dev/fb0 c 29 0
  read W H < /splash.size
  FBW=$(cut -d, -f1 /sys/class/graphics/fb0/virtual_size); FBH=$(cut -d, -f2 /sys/class/graphics/fb0/virtual_size)
  STRIDE=$(cat /sys/class/graphics/fb0/stride); BPP=$(cat /sys/class/graphics/fb0/bits_per_pixel)
  if [ "$BPP" = 32 ] && [ "$FBW" -ge "$W" ] && [ "$FBH" -ge "$H" ]; then
    echo 0 > /sys/class/graphics/fbcon/cursor_blink 2>/dev/null
    dd if=/dev/zero of=/dev/fb0 bs=$STRIDE count=$FBH 2>/dev/null
    X0=$(( (FBW - W) / 2 * 4 )); Y0=$(( (FBH - H) / 2 )); r=0
    while [ $r -lt $H ]; do
      dd if=/splash.raw of=/dev/fb0 bs=$((W * 4)) skip=$r count=1 seek=$(( (Y0 + r) * STRIDE + X0 )) oflag=seek_bytes conv=notrunc 2>/dev/null
      r=$((r + 1))
    done
  fi
fi
`;
