#!/usr/bin/env bash
# Builds the guest image: a kernel plus a root whose /init is the agent, as an erofs image (what pods boot:
# the minimal kernel maps it from a read-only NVDIMM, laid out as an fsdax namespace; a kernel without DAX
# gets a plain image for a read-only virtio disk) and as an initramfs (for the cloud kernel, which needs its
# modules before it can read a disk).
#   build-image.sh OUTDIR AGENT_BINARY
# Writes OUTDIR/vmlinuz, OUTDIR/rootfs.erofs, OUTDIR/initramfs.img, OUTDIR/image-info.txt (each replaced atomically;
# same inputs give byte-identical outputs). The kernel is podvisor's minimal one (Images/build-kernel.sh,
# everything built in, no modules in the initramfs; vmlinuz is then its uncompressed ELF, which QEMU boots
# through the PVH entry) or Debian's cloud kernel (a bzImage): installing nothing on the
# host, that package is fetched with `apt-get download` into OUTDIR/cache and unpacked with `dpkg-deb -x`.
# Environment:
#   PODVISOR_KERNEL=minimal|cloud   which kernel (default minimal)
#   PODVISOR_KERNEL_CACHE=dir       the minimal kernel's build cache (default OUTDIR/../kernel)
#   PODVISOR_KERNEL_DEB=path.deb    use this kernel package (offline builds, pinning)
#   PODVISOR_KERNEL_PKG=name        kernel package name (default: what linux-image-cloud-amd64 depends on)
#   PODVISOR_INITRD_COMPRESS=zstd|gzip   (default zstd when the kernel has CONFIG_RD_ZSTD=y)
#   PODVISOR_IMAGE_CACHE=dir        download cache (default OUTDIR/cache)
set -euo pipefail

die() { printf 'build-image: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'build-image: %s\n' "$*" >&2; }

[ $# -eq 2 ] || die "usage: $0 OUTDIR AGENT_BINARY"
out=$1
agent=$2
here=$(cd "$(dirname "$0")" && pwd)
modlist=$here/modules.list
[ -f "$agent" ] || die "agent binary not found: $agent"
[ -f "$modlist" ] || die "missing $modlist"
for t in apt-get apt-cache dpkg-deb cpio gzip mkfs.erofs perl; do command -v "$t" >/dev/null || die "missing tool: $t (make deps)"; done

mkdir -p "$out"
cache=${PODVISOR_IMAGE_CACHE:-$out/cache}
mkdir -p "$cache"
# Scratch space next to the outputs so the final mv is a rename on the same filesystem.
work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
export LC_ALL=C

# --- 1. kernel ----------------------------------------------------------------------------
kernel=${PODVISOR_KERNEL:-minimal}
case $kernel in
minimal)
    entry=$("$here/build-kernel.sh" "${PODVISOR_KERNEL_CACHE:-$out/../kernel}")
    kpkg="podvisor minimal ($(basename "$entry"), $(cat "$entry/source"))"
    kver=$(cat "$entry/release")
    # No modules at all: Images/modules.list must resolve to built-ins below.
    kdir=$entry
    vmlinuz=$entry/vmlinux
    kconfig=$entry/config
    ;;
cloud)
    apt_opts=()
    # apt drops to user _apt for downloads and warns when it cannot; as root into our own dir that is moot.
    [ "$(id -u)" -ne 0 ] || apt_opts=(-o APT::Sandbox::User=root)
    if [ -n "${PODVISOR_KERNEL_DEB:-}" ]; then
        deb=$PODVISOR_KERNEL_DEB
        [ -f "$deb" ] || die "PODVISOR_KERNEL_DEB not found: $deb"
    else
        pkg=${PODVISOR_KERNEL_PKG:-}
        if [ -z "$pkg" ]; then
            # The metapackage depends on the concrete ABI package, e.g. linux-image-6.1.0-56-cloud-amd64.
            pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
                awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }') || true
        fi
        ver=
        [ -z "$pkg" ] || ver=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | awk '/^Version:/ { print $2; exit }') || true
        deb=
        if [ -n "$ver" ]; then
            for f in "$cache/${pkg}"_*.deb; do
                [ -f "$f" ] && [ "$(dpkg-deb -f "$f" Version)" = "$ver" ] && deb=$f && break
            done
            if [ -z "$deb" ]; then
                log "downloading $pkg $ver"
                mkdir -p "$work/dl"
                (cd "$work/dl" && apt-get "${apt_opts[@]}" download -q "$pkg=$ver" >&2) ||
                    die "apt-get download $pkg=$ver failed (stale package lists? run apt-get update)"
                f=$(find "$work/dl" -maxdepth 1 -name "${pkg}_*.deb" | head -n1)
                [ -n "$f" ] || die "apt-get download produced no .deb"
                # Keep only the current kernel in the cache.
                rm -f "$cache"/linux-image-*.deb
                mv "$f" "$cache/"
                deb=$cache/$(basename "$f")
            fi
        else
            [ -z "${PODVISOR_KERNEL_PKG:-}" ] || die "apt knows no package $PODVISOR_KERNEL_PKG"
            # No package lists (fresh container) or the package vanished: use the newest cached one.
            deb=$(find "$cache" -maxdepth 1 -name 'linux-image-*-cloud-amd64_*.deb' | sort -V | tail -n1)
            [ -n "$deb" ] || die "cannot resolve the cloud kernel package (run apt-get update, or set PODVISOR_KERNEL_DEB)"
            log "WARNING: apt knows no cloud kernel; using cached $(basename "$deb")"
        fi
    fi
    kpkg="$(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)"
    dpkg-deb -x "$deb" "$work/k"
    kver=$(find "$work/k/lib/modules" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort | head -n1)
    [ -n "$kver" ] || die "no lib/modules/<version> in $deb"
    kdir=$work/k/lib/modules/$kver
    vmlinuz=$work/k/boot/vmlinuz-$kver
    kconfig=$work/k/boot/config-$kver
    [ -f "$vmlinuz" ] || die "no boot/vmlinuz-$kver in $deb"
    ;;
*) die "PODVISOR_KERNEL must be minimal or cloud" ;;
esac
# Every timestamp in the initramfs comes from the kernel image: reproducible, changes with the kernel.
epoch=$(stat -c %Y "$vmlinuz")

# --- 2. modules ----------------------------------------------------------------------------
# Debian's package ships no modules.dep (its postinst runs depmod), so dependencies come from
# each module's modinfo "depends=" (what modpost computed from symbols; the same graph depmod
# builds). Names treat '-' and '_' alike, as the kernel does.
norm() { printf '%s' "${1//-/_}"; }
declare -A modpath=() builtin=() state=() depsof=() softdeps=()
while IFS= read -r f; do
    b=${f##*/}
    b=${b%.ko*}
    modpath[$(norm "$b")]=$f
done < <(find "$kdir" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')
if [ -f "$kdir/modules.builtin" ]; then
    while IFS= read -r f; do
        b=${f##*/}
        builtin[$(norm "${b%.ko}")]=1
    done <"$kdir/modules.builtin"
fi

mkdir -p "$work/mods"
# Copies module $1 into $work/mods as a plain .ko (the agent uses finit_module without
# decompression flags) and sets depsof[$1].
fetch_module() {
    local name=$1 src=${modpath[$1]} base dst info
    base=${src##*/}
    base=${base%.ko*}.ko
    dst=$work/mods/$base
    case $src in
    *.ko) cp "$src" "$dst" ;;
    *.ko.xz) xz -dc "$src" >"$dst" ;;
    *.ko.zst) zstd -q -dc "$src" >"$dst" ;;
    *.ko.gz) gzip -dc "$src" >"$dst" ;;
    esac
    # .modinfo holds NUL-separated key=value strings.
    info=$(tr '\0' '\n' <"$dst" | grep -a -E '^(depends|softdep)=' || true)
    depsof[$name]=$(printf '%s\n' "$info" | sed -n 's/^depends=//p' | head -n1 | tr ',' ' ')
    softdeps[$name]=$(printf '%s\n' "$info" | sed -n 's/^softdep=//p' | tr '\n' ' ')
    modfile[$name]=$base
}
declare -A modfile=()
order=()
skipped=()
# Depth-first: a module goes after everything it depends on; each appears once.
visit() {
    local name d
    name=$(norm "$1")
    case ${state[$name]:-} in
    done) return ;;
    active) die "module dependency cycle at $name" ;;
    esac
    if [ -z "${modpath[$name]:-}" ]; then
        if [ -n "${builtin[$name]:-}" ]; then
            state[$name]=done
            skipped+=("$name")
            return
        fi
        die "module $name is neither in $kver's modules nor built in"
    fi
    state[$name]=active
    fetch_module "$name"
    for d in ${depsof[$name]}; do visit "$d"; done
    state[$name]=done
    order+=("$name")
}
while IFS= read -r line; do
    line=${line%%#*}
    line=${line//[[:space:]]/}
    [ -z "$line" ] || visit "$line"
done <"$modlist"

# --- 3. rootfs and initramfs ------------------------------------------------------------------------
root=$work/root
mkdir -p "$root/lib/modules"
# newroot: where the agent mounts the tmpfs it moves onto (a read-only disk root cannot make it).
for d in proc sys dev run tmp mnt etc newroot; do mkdir -p "$root/$d"; done
cp "$agent" "$root/init"
for n in "${order[@]}"; do
    cp "$work/mods/${modfile[$n]}" "$root/lib/modules/"
    echo "${modfile[$n]}"
done >"$root/lib/modules/load-order"
# Modes are set explicitly so the caller's umask cannot change the image.
find "$root" -type d -exec chmod 0755 {} +
find "$root" -type f -exec chmod 0644 {} +
chmod 0755 "$root/init"
chmod 1777 "$root/tmp"
find "$root" -exec touch -h -d "@$epoch" {} +

# The root pods boot, the same tree as erofs: uncompressed, so the guest maps or reads the agent's pages as
# it runs them with nothing to unpack; without tail packing (noinline_data), since erofs maps only files laid
# out flat with DAX; reproducible (fixed time and UUID, every file root's).
mkfs.erofs --quiet -Enoinline_data -T"$epoch" -U00000000-0000-0000-0000-000000000000 --all-root "$work/rootfs.erofs" "$root" >&2
# A kernel with NVDIMM and DAX support maps the root instead of reading it: the image is then laid out as an
# fsdax namespace (pfn-root.pl), which the runtime gives pods as a read-only NVDIMM. Otherwise it stays a
# plain erofs image, which the runtime gives them as a read-only disk.
if grep -qx 'CONFIG_FS_DAX=y' "$kconfig" && grep -qx 'CONFIG_ACPI_NFIT=y' "$kconfig"; then
    perl "$here/pfn-root.pl" "$work/rootfs.erofs" "$work/rootfs.fsdax"
    mv "$work/rootfs.fsdax" "$work/rootfs.erofs"
    rootfs_layout=fsdax
else
    rootfs_layout=erofs
fi

compress=${PODVISOR_INITRD_COMPRESS:-}
if [ -z "$compress" ]; then
    # zstd -9: smaller than gzip -6 (5.2 vs 5.6 MB for a 21 MB cpio), compresses in half the
    # time (0.4 s) and unpacks ~4x faster; boot time under TCG is the same within noise. -19
    # saves another 10% but costs 6.7 s per agent rebuild.
    if grep -qx 'CONFIG_RD_ZSTD=y' "$kconfig" && command -v zstd >/dev/null; then compress=zstd; else compress=gzip; fi
fi
case $compress in
zstd)
    grep -qx 'CONFIG_RD_ZSTD=y' "$kconfig" || die "kernel $kver cannot unpack a zstd initramfs"
    # Levels up to 19 keep the window at 8 MiB or less; --ultra windows cost the kernel memory.
    compressor=(zstd -q -9 -T1 -c)
    ;;
gzip) compressor=(gzip -n -6 -c) ;;
*) die "PODVISOR_INITRD_COMPRESS must be zstd or gzip" ;;
esac
# Sorted names without "./", owner root, no host inode numbers: byte-identical for equal inputs.
(cd "$root" && find . -mindepth 1 -printf '%P\n' | sort |
    cpio -o -H newc -R 0:0 --reproducible --quiet) | "${compressor[@]}" >"$work/initramfs.img"
cp "$vmlinuz" "$work/vmlinuz"

# --- 4. report and install -------------------------------------------------------------------
size() { stat -c %s "$1"; }
stripped=unknown
if command -v readelf >/dev/null; then
    if readelf -S "$agent" 2>/dev/null | grep -q '\.symtab'; then stripped=no; else stripped=yes; fi
    ! readelf -l "$agent" 2>/dev/null | grep -q 'INTERP' ||
        log "WARNING: $agent is dynamically linked; it cannot run as /init"
fi
{
    echo "kernel_package: $kpkg"
    echo "kernel_version: $kver"
    echo "vmlinuz_bytes: $(size "$work/vmlinuz")"
    echo "rootfs_bytes: $(size "$work/rootfs.erofs")"
    echo "rootfs_layout: $rootfs_layout"
    echo "initramfs_bytes: $(size "$work/initramfs.img")"
    echo "initramfs_compression: $compress"
    echo "initramfs_uncompressed_bytes: $(cd "$root" && find . -mindepth 1 -printf '%P\n' | sort | cpio -o -H newc -R 0:0 --reproducible --quiet | wc -c)"
    echo "agent_bytes: $(size "$agent")"
    echo "agent_stripped: $stripped"
    echo "modules_load_order: $(tr '\n' ' ' <"$root/lib/modules/load-order" | sed 's/ $//')"
    echo "modules_builtin_skipped: ${skipped[*]:-}"
    for n in "${order[@]}"; do
        [ -z "${softdeps[$n]}" ] || echo "module_softdep: $n ${softdeps[$n]% }"
    done
    for n in "${order[@]}"; do
        echo "module: ${modfile[$n]} $(size "$root/lib/modules/${modfile[$n]}")"
    done
} >"$work/image-info.txt"

# QEMU runs as libvirt-qemu: the outputs must be readable whatever the caller's umask.
chmod 0644 "$work/image-info.txt" "$work/vmlinuz" "$work/rootfs.erofs" "$work/initramfs.img"
# The Makefile's targets (vmlinuz, rootfs.erofs, initramfs.img) are renamed last so they end up newest.
mv -f "$work/image-info.txt" "$out/image-info.txt"
mv -f "$work/vmlinuz" "$out/vmlinuz"
mv -f "$work/rootfs.erofs" "$out/rootfs.erofs"
mv -f "$work/initramfs.img" "$out/initramfs.img"
touch "$out/vmlinuz" "$out/rootfs.erofs" "$out/initramfs.img"
log "$kver: $out/vmlinuz ($(size "$out/vmlinuz") B), $out/rootfs.erofs ($(size "$out/rootfs.erofs") B), $out/initramfs.img ($(size "$out/initramfs.img") B, $compress), ${#order[@]} modules"
