#!/usr/bin/env bash
# Builds podvisor's Debian package from a tree staged by `make install PREFIX=/usr DESTDIR=…` (make deb).
#   build-deb.sh STAGE VERSION OUTPUT.deb
# STAGE must be <dir>/debian/podvisor, where dpkg-shlibdeps expects a package's files.
# Depends: the shared libraries the staged executables link (dpkg-shlibdeps: libvirt0, libarchive13, libc6…)
# and the programs podvisor runs or loads without linking them (below). Recommends: containerd and runc, for
# host pods (`[host_pods] endpoint`; podvisor-containerd.service).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
stage=$(realpath "$1") version=$2 deb=$(realpath -m "$3")
source_dir=$(cd "$stage/../.." && pwd)
[ "$(basename "$stage")" = podvisor ] && [ "$(basename "$(dirname "$stage")")" = debian ] ||
    { echo "build-deb: $stage is not <dir>/debian/podvisor" >&2; exit 1; }

# Executed or loaded, never linked: QEMU, virtiofsd (qemu-system-common), libvirt's QEMU driver (loaded by
# libvirt0 for qemu:///embed), the CNI plugins, iptables (portmap), ip and tc; useradd for postinst.
runtime_depends=(qemu-system-x86 qemu-system-common libvirt-daemon-driver-qemu containernetworking-plugins
    iptables iproute2 passwd)

# dpkg-shlibdeps reads the source package's control file; a minimal one names the package. It finds the
# package's root (for paths within it and $ORIGIN in RPATHs) by its DEBIAN directory.
printf 'Source: podvisor\n\nPackage: podvisor\nArchitecture: any\n' >"$source_dir/debian/control"
rm -rf "$stage/DEBIAN"
size=$(du -sk "$stage" | cut -f1)
install -d -m 0755 "$stage/DEBIAN"
mapfile -t executables < <(find "$stage" -path "$stage/DEBIAN" -prune -o -type f -perm -u+x -exec sh -c \
    '[ "$(head -c 4 "$1" | od -An -c | tr -d " ")" = 177ELF ]' _ {} \; -print)
shlibs=$(cd "$source_dir" && dpkg-shlibdeps -O "${executables[@]}" | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "build-deb: dpkg-shlibdeps found no libraries" >&2; exit 1; }

cat >"$stage/DEBIAN/control" <<EOF
Package: podvisor
Version: $version
Architecture: $(dpkg --print-architecture)
Maintainer: $(git -C "$here" log -1 --format='%an <%ae>')
Installed-Size: $size
Depends: $shlibs$(printf ', %s' "${runtime_depends[@]}")
Recommends: containerd, runc
Section: admin
Priority: optional
Description: Kubernetes container runtime with one virtual machine per pod
 podvisord serves the Kubernetes CRI (RuntimeService and ImageService) on a unix socket and runs every pod
 sandbox in its own QEMU virtual machine, driven through libvirt's embedded QEMU driver; the podvisor
 command runs pods by hand, standalone or as a client of podvisord. Includes the guest kernel, its
 root filesystem (and an initramfs of it), and vhost-device-vsock.
EOF
# Everything in /etc is the operator's to change: dpkg keeps their edits on upgrades.
(cd "$stage" && find etc -type f -printf '/%p\n') >"$stage/DEBIAN/conffiles"
install -m 0755 "$here/postinst" "$here/prerm" -t "$stage/DEBIAN"
sed "s/@CNI_SHA256@/$(sha256sum <"$here/../cni/10-podvisor.conflist" | cut -d' ' -f1)/" "$here/postrm" >"$stage/DEBIAN/postrm"
chmod 0755 "$stage/DEBIAN/postrm"
dpkg-deb --root-owner-group --build "$stage" "$deb"
