#!/usr/bin/env bash
# Builds podvisor's minimal guest kernel from Debian's linux-source-6.1 with Images/kernel/podvisor.config
# on top of tinyconfig, once per input: the result is cached under CACHE_DIR/<key>/, where the key hashes the
# config fragment and the source package's version (a change to this script alone needs `rm -r CACHE_DIR`).
#   build-kernel.sh CACHE_DIR
# Prints the cache entry's directory on stdout: vmlinux (what pods boot: the uncompressed, stripped ELF, whose
# PVH entry QEMU jumps to directly), bzImage, config (the full .config), release (uname -r),
# modules.builtin (what Images/build-image.sh checks Images/modules.list against), source (package, version),
# System.map.
set -euo pipefail

die() { printf 'build-kernel: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'build-kernel: %s\n' "$*" >&2; }

[ $# -eq 1 ] || die "usage: $0 CACHE_DIR"
cache=$(realpath -m "$1")
here=$(cd "$(dirname "$0")" && pwd)
fragment=$here/kernel/podvisor.config
srcpkg=linux-source-6.1
tarball=/usr/src/$srcpkg.tar.xz
[ -f "$fragment" ] || die "missing $fragment"
srcver=$(dpkg-query -W -f='${Version}' "$srcpkg" 2>/dev/null) && [ -f "$tarball" ] ||
    die "$srcpkg is not installed (make deps)"
for t in gcc make bc bison flex cpio perl; do command -v "$t" >/dev/null || die "missing tool: $t (make deps)"; done

key=$( (echo "$srcpkg $srcver" && cat "$fragment") | sha256sum | cut -c1-16)
entry=$cache/$key
if [ -f "$entry/vmlinux" ]; then
    echo "$entry"
    exit 0
fi

mkdir -p "$cache"
export LC_ALL=C
# One unpacked source tree per package version, shared by every config; builds go to their own O= tree.
src=$cache/src-$srcver/$srcpkg
if [ ! -f "$src/Makefile" ]; then
    log "unpacking $tarball"
    rm -rf "$cache/src-$srcver"
    mkdir -p "$cache/src-$srcver.tmp"
    tar -xf "$tarball" -C "$cache/src-$srcver.tmp"
    mv "$cache/src-$srcver.tmp" "$cache/src-$srcver"
fi
# Older source trees (an upgraded package) are never used again.
find "$cache" -mindepth 1 -maxdepth 1 -name 'src-*' ! -name "src-$srcver" -exec rm -rf {} +

work=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
obj=$work/obj
# Fixed identity: the same inputs give the same kernel whoever builds it.
export KBUILD_BUILD_USER=podvisor KBUILD_BUILD_HOST=podvisor KBUILD_BUILD_VERSION=1
export KBUILD_BUILD_TIMESTAMP="$(date -u -d "@$(stat -c %Y "$tarball")" 2>/dev/null || echo 1970-01-01)"
kmake() { make -s -C "$src" O="$obj" ARCH=x86_64 LOCALVERSION=-podvisor "$@"; }
log "configuring ($srcpkg $srcver, key $key)"
kmake tinyconfig >/dev/null
(cd "$obj" && "$src/scripts/kconfig/merge_config.sh" -m -O "$obj" .config "$fragment" >/dev/null)
kmake olddefconfig
# merge_config only warns; a fragment line kconfig dropped (a missing dependency) is a bug in the fragment.
missing=()
while IFS= read -r line; do
    case $line in
    CONFIG_*=*) grep -qxF "$line" "$obj/.config" || missing+=("$line") ;;
    "# CONFIG_"*" is not set") ! grep -q "^${line:2:-11}=" "$obj/.config" || missing+=("$line") ;;
    esac
done <"$fragment"
[ ${#missing[@]} -eq 0 ] || die "the config fragment's lines did not survive olddefconfig: ${missing[*]}"

log "building bzImage with $(nproc) jobs"
start=$(date +%s)
kmake -j"$(nproc)" bzImage
log "built in $(($(date +%s) - start)) s"

mkdir -p "$work/out"
cp "$obj/arch/x86/boot/bzImage" "$work/out/bzImage"
# The bzImage's payload: vmlinux without symbols. Booted through its PVH note it skips the BIOS's real-mode
# loader and the LZ4 decompression (~200 ms of a TCG boot before the kernel's first line).
cp "$obj/arch/x86/boot/compressed/vmlinux.bin" "$work/out/vmlinux"
cp "$obj/.config" "$work/out/config"
cp "$obj/modules.builtin" "$work/out/modules.builtin"
# Without kallsyms, initcall_debug and oopses print bare addresses: this names them.
cp "$obj/System.map" "$work/out/System.map"
kmake -s kernelrelease >"$work/out/release"
echo "$srcpkg $srcver" >"$work/out/source"
chmod 0644 "$work/out"/*
# The image builder dates the initramfs's files by the kernel: the source's date keeps rebuilds identical.
touch -r "$tarball" "$work/out"/*
# Only the newest entry is kept: a changed fragment makes the old kernel unreachable.
find "$cache" -mindepth 1 -maxdepth 1 ! -name 'src-*' ! -name '.build.*' -exec rm -rf {} +
mv "$work/out" "$entry"
echo "$entry"
