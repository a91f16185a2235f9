#!/usr/bin/env bash
# Builds the benchmark's baseline initramfs: busybox and an /init that only announces itself on the
# console and powers off. Booted with the same kernel and domain XML as a pod VM, it measures what a
# bare libvirt boot costs, so `podvisor bench boot` can report the agent's overhead as a ratio.
#   build-baseline.sh OUTFILE
set -euo pipefail
out=$1
busybox=/bin/busybox
# ldd fails on a static binary: the initramfs has no shared libraries to offer.
if ldd "$busybox" >/dev/null 2>&1 || [ ! -x "$busybox" ]; then
    echo "build-baseline: $busybox missing or not static (apt-get install busybox-static)" >&2
    exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/{bin,proc,dev}
cp "$busybox" "$work/bin/busybox"
cat >"$work/init" <<'INIT'
#!/bin/busybox sh
echo PODVISOR-BASELINE-READY >/dev/console
/bin/busybox poweroff -f
INIT
chmod 0755 "$work/init" "$work/bin/busybox"
mkdir -p "$(dirname "$out")"
(cd "$work" && find . -mindepth 1 -printf '%P\n' | sort | cpio -o -H newc -R 0:0 --quiet) | zstd -q -9 >"$out.tmp"
chmod 0644 "$out.tmp"
mv "$out.tmp" "$out"
