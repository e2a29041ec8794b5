#!/usr/bin/env bash
# Installs the Debian packages kvmux, its demo and its tests use. Safe to run again.
set -euo pipefail
PKGS=(
  xvfb xserver-xorg-core xserver-xorg-video-dummy x11-utils x11-xserver-utils xdotool imagemagick
  xfonts-base kbd qemu-system-x86 qemu-system-gui qemu-utils busybox-static xterm nftables
  squashfs-tools linux-image-amd64 socat tmux iproute2 cpio procps
  python3 # tests: raw AF_PACKET frames across a kvmux bridge (test/net/guest-frames)
  systemd-container # subhosts: systemd-nspawn (no systemd as pid 1 needed: --register=no --keep-unit)
  fonts-dejavu-core # demo: the caption font of story.png (ImageMagick has no usable default)
  # kvmux image build and its boot tests: the root, GRUB for BIOS and UEFI, the ESP, OVMF
  mmdebstrap grub-pc-bin grub-efi-amd64-bin grub2-common mtools dosfstools fdisk e2fsprogs ovmf
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install-deps: all Debian packages present" >&2
fi
