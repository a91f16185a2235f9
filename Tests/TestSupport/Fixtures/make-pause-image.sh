#!/bin/bash
# Builds a pause (sandbox) image for containerd offline: Fixtures/pause.c compiled static, one layer with
# /pause as entrypoint (umoci), written as a docker-archive tarball named NAME (skopeo), which
# `ctr -n k8s.io images import` takes. containerd 1.6 runs its sandbox_image in every pod and pulls it when
# missing; tests have no registry for it.
# Usage: make-pause-image.sh WORKDIR OUT.tar NAME        (NAME e.g. registry.k8s.io/pause:3.10)
# CC: the C compiler (default cc, else the clang beside swift).
set -euo pipefail
work=$1
out=$2
name=$3
here=$(cd "$(dirname "$0")" && pwd)
cc=${CC:-}
if [ -z "$cc" ]; then
    for candidate in cc gcc clang "$(dirname "$(command -v swift 2>/dev/null || echo /nonexistent/swift)")/clang"; do
        if command -v "$candidate" >/dev/null 2>&1; then cc=$candidate; break; fi
    done
fi
[ -n "$cc" ] || { echo "make-pause-image.sh: no C compiler (set CC)" >&2; exit 1; }
rm -rf "$work" && mkdir -p "$work"
layout=$work/layout
"$cc" -static -Os -s -o "$work/pause" "$here/pause.c"
umoci init --layout "$layout"
umoci new --image "$layout:pause"
umoci config --image "$layout:pause" --os linux --architecture amd64 --config.entrypoint /pause --config.user 65535:65535
umoci unpack --image "$layout:pause" "$work/bundle"
install -m 0755 "$work/pause" "$work/bundle/rootfs/pause"
umoci repack --image "$layout:pause" "$work/bundle"
rm -f "$out"
skopeo copy --quiet "oci:$layout:pause" "docker-archive:$out:$name"
rm -rf "$work"
