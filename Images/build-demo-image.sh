#!/usr/bin/env bash
# The demo image `make demo` runs: the busybox root filesystem (build-busybox-rootfs.sh) as a one-layer OCI
# image in an OCI layout, tagged `latest`, for `podvisor image import` (no registry, no internet).
#   build-demo-image.sh ROOTFS OUTDIR
set -euo pipefail
rootfs=$1
out=$2
tmp=$(mktemp -d "$(dirname "$out")/.demo-image.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
layout=$tmp/layout
umoci init --layout "$layout"
umoci new --image "$layout:latest"
umoci config --image "$layout:latest" --os linux --architecture amd64 --config.cmd /bin/sh \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --config.workingdir /
umoci unpack --image "$layout:latest" "$tmp/bundle"
cp -a "$rootfs/." "$tmp/bundle/rootfs/"
umoci repack --image "$layout:latest" "$tmp/bundle"
umoci gc --layout "$layout"
rm -rf "$out"
mv "$layout" "$out"
