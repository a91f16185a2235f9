#!/usr/bin/env bash
# A minimal container root filesystem from Debian's busybox-static: every applet as a symlink, root and an
# unprivileged user `app` (1000). Used by `make bench` (idle containers) and as the demo image's content.
#   build-busybox-rootfs.sh OUTDIR
set -euo pipefail
out=$1
busybox=/bin/busybox
if ldd "$busybox" >/dev/null 2>&1 || [ ! -x "$busybox" ]; then
    echo "build-busybox-rootfs: $busybox missing or not static (apt-get install busybox-static)" >&2
    exit 1
fi
tmp=$(mktemp -d "$(dirname "$out")/.rootfs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{bin,etc,tmp,proc,sys,dev,root,home/app}
chmod 1777 "$tmp/tmp"
cp "$busybox" "$tmp/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$tmp/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n' >"$tmp/etc/passwd"
printf 'root:x:0:\napp:x:1000:\n' >"$tmp/etc/group"
chown 1000:1000 "$tmp/home/app"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
