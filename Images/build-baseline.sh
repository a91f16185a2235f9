#!/usr/bin/env bash
# Builds the benchmark's baseline initramfs: the busybox root filesystem and an /init that only announces
# itself on the console and powers off. Booted with the same kernel and domain XML as a pod VM, it measures
# what a bare libvirt boot costs, so `podvisor bench boot` can report the agent's overhead as a ratio.
#   build-baseline.sh OUTFILE
set -euo pipefail
out=$1
mkdir -p "$(dirname "$out")"
work=$(mktemp -d "$(dirname "$out")/.baseline.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$(dirname "$0")/build-busybox-rootfs.sh" "$work/root"
cat >"$work/root/init" <<'INIT'
#!/bin/busybox sh
echo PODVISOR-BASELINE-READY >/dev/console
/bin/busybox poweroff -f
INIT
chmod 0755 "$work/root/init"
(cd "$work/root" && find . -mindepth 1 -printf '%P\n' | sort | cpio -o -H newc -R 0:0 --quiet) | zstd -q -9 >"$out.tmp"
chmod 0644 "$out.tmp"
mv "$out.tmp" "$out"
