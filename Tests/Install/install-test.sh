#!/usr/bin/env bash
# The Debian package as a node gets it (make install-test, part of make test; root, the host's dependencies):
#   install-test.sh PODVISOR.deb DEMO_IMAGE_DIR
# The package is unpacked into a scratch root (dpkg-deb -x: the host's dpkg database is not touched) and its
# maintainer scripts run against that root through DPKG_ROOT, as `dpkg --root` would run them. The installed
# podvisor then imports the demo image and runs it in a pod VM with the installed kernel, rootfs and
# vhost-device-vsock: the installed config, its paths into the package moved below the scratch root, is all
# it is given. Everything it makes goes when it exits, also on failure.
set -euo pipefail

deb=$(realpath "$1")
demo=$(realpath "$2")
bridge=pvinst0
scratch=$(mktemp -d /tmp/pvinstall.XXXXXX)
# QEMU (user libvirt-qemu) must reach the kernel, rootfs and the VMs' directories below.
chmod 0755 "$scratch"
root=$scratch/root
config=$scratch/config.toml
podvisor=$root/usr/bin/podvisor
started=$(date +%s)

log() { printf 'install-test: %s\n' "$*"; }
fail() { printf 'install-test: FAILED: %s\n' "$*" >&2; exit 1; }

cleanup() {
    # Pods the run left (a failure half-way): podvisor removes them, VMs, networks and files included.
    if [ -x "$podvisor" ] && [ -f "$config" ]; then
        "$podvisor" pods --config "$config" 2>/dev/null | awk 'NR > 1 { print $1 }' |
            xargs -r "$podvisor" rm -f --config "$config" >/dev/null 2>&1 || true
    fi
    # Whatever still runs on the scratch directory (QEMU, helpers), what is mounted below it, the bridge.
    local pid
    for pid in $(pgrep -f -- "$scratch"); do kill -KILL "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do pgrep -f -- "$scratch" >/dev/null || break; sleep 0.1; done
    awk -v s="$scratch" 'index($5, s) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r mount; do umount -l "$mount"; done
    ip link del dev "$bridge" 2>/dev/null || true
    rm -rf "$scratch"
}
trap cleanup EXIT
# bash runs the EXIT trap on a signal only where the signal is trapped.
trap 'exit 143' INT TERM HUP

[ "$(id -u)" -eq 0 ] || fail "needs root (VMs, the pod network)"
! ip link show dev "$bridge" >/dev/null 2>&1 || fail "bridge $bridge exists already: another run of this test?"

# --- the package ------------------------------------------------------------------------------------------
version=$(dpkg-deb -f "$deb" Version)
depends=$(dpkg-deb -f "$deb" Depends)
for package in libvirt0 libarchive13 qemu-system-x86 qemu-system-common libvirt-daemon-driver-qemu \
    containernetworking-plugins iptables iproute2; do
    [[ ", $depends," == *", $package"[\ ,]* ]] || fail "Depends lacks $package: $depends"
done
[ "$(dpkg-deb -f "$deb" Package)" = podvisor ] && [ "$(basename "$deb")" = "podvisor_${version}_$(dpkg --print-architecture).deb" ] ||
    fail "package name or file name: $(basename "$deb")"
dpkg-deb -x "$deb" "$root"
dpkg-deb -e "$deb" "$scratch/DEBIAN"
for file in usr/bin/podvisor usr/bin/podvisord usr/libexec/podvisor/vhost-device-vsock usr/share/podvisor/vmlinuz \
    usr/share/podvisor/rootfs.erofs usr/share/podvisor/initramfs.img etc/podvisor/config.toml etc/podvisor/containerd.toml \
    lib/systemd/system/podvisord.service lib/systemd/system/podvisor-containerd.service \
    usr/share/man/man1/podvisor.1.gz usr/share/man/man1/podvisord.1.gz usr/share/bash-completion/completions/podvisor \
    usr/share/zsh/vendor-completions/_podvisor usr/share/fish/vendor_completions.d/podvisor.fish \
    usr/share/doc/podvisor/README.md; do
    [ -s "$root/$file" ] || fail "/$file is not in the package"
done
[ ! -e "$root/etc/cni" ] || fail "the package ships /etc/cni (the default network is postinst's to place)"
grep -qx /etc/podvisor/config.toml "$scratch/DEBIAN/conffiles" || fail "/etc/podvisor/config.toml is no conffile"
log "podvisor $version: $(dpkg-deb -c "$deb" | wc -l) entries; Depends: $depends"

# --- the binaries: no Swift toolchain, what the shared libraries need is declared ----------------------
for binary in "$podvisor" "$root/usr/bin/podvisord" "$root/usr/libexec/podvisor/vhost-device-vsock"; do
    libraries=$(env -i ldd "$binary")
    ! grep -q 'not found' <<<"$libraries" || fail "$binary: $(grep 'not found' <<<"$libraries")"
    ! grep -q 'libswift\|libFoundation\|/opt/swift' <<<"$libraries" || fail "$binary needs the Swift toolchain"
done
# Run as on a node: no toolchain on PATH, nothing in the environment.
installed() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
[ "$(installed "$podvisor" --version)" = "$version" ] || fail "podvisor --version is not $version"
[ "$(installed "$root/usr/bin/podvisord" --version)" = "$version" ] || fail "podvisord --version is not $version"
installed "$podvisor" --help | grep -q 'run' || fail "podvisor --help lists no run"
installed "$root/usr/bin/podvisord" --help | grep -q -- '--config' || fail "podvisord --help lists no --config"
MANWIDTH=120 man -l "$root/usr/share/man/man1/podvisor.1.gz" 2>/dev/null | grep -q 'port-forward' ||
    fail "podvisor(1) does not render or lacks the subcommands"
bash -n "$root/usr/share/bash-completion/completions/podvisor" || fail "the bash completion does not parse"
grep -q '^#compdef podvisor' "$root/usr/share/zsh/vendor-completions/_podvisor" || fail "the zsh completion"
grep -Eq "^complete -c '?podvisor'? " "$root/usr/share/fish/vendor_completions.d/podvisor.fish" || fail "the fish completion"
grep -qx 'ExecStart=/usr/bin/podvisord --config /etc/podvisor/config.toml' "$root/lib/systemd/system/podvisord.service" ||
    fail "the unit does not run the installed podvisord"

# --- the maintainer scripts against the scratch root -----------------------------------------------------
maintainer() { DPKG_ROOT=$root DPKG_MAINTSCRIPT_PACKAGE=podvisor DPKG_MAINTSCRIPT_NAME=$1 "$scratch/DEBIAN/$1" "${@:2}"; }
maintainer postinst configure ""
cmp -s "$root/etc/cni/net.d/10-podvisor.conflist" "$root/usr/share/podvisor/10-podvisor.conflist" ||
    fail "postinst placed no default pod network"
# An operator's network is never joined by ours; purge takes ours only while unchanged.
mv "$root/etc/cni/net.d/10-podvisor.conflist" "$root/etc/cni/net.d/05-operator.conflist"
maintainer postinst configure "$version"
[ ! -e "$root/etc/cni/net.d/10-podvisor.conflist" ] || fail "postinst added a network beside the operator's"
cp "$root/usr/share/podvisor/10-podvisor.conflist" "$root/etc/cni/net.d/10-podvisor.conflist"
maintainer prerm remove
maintainer postrm purge
[ ! -e "$root/etc/cni/net.d/10-podvisor.conflist" ] && [ -e "$root/etc/cni/net.d/05-operator.conflist" ] ||
    fail "purge did not remove exactly the default network"
rm "$root/etc/cni/net.d/05-operator.conflist"
maintainer postinst configure ""
log "maintainer scripts: the default network placed only where none is, purged only while unchanged"

# --- a pod VM from the installed files -------------------------------------------------------------------
# The installed config, with every path into the package moved below the scratch root (the host's QEMU and
# virtiofsd stay), its own state directory, and the default network on a bridge and leases of the test's own.
every_path_installed=1
while IFS= read -r line; do
    if [[ $line =~ ^([a-z_]+)\ =\ \"(/[^\"]*)\"$ ]] && [ -e "$root${BASH_REMATCH[2]}" ]; then
        line="${BASH_REMATCH[1]} = \"$root${BASH_REMATCH[2]}\""
    elif [[ $line =~ ^(kernel|rootfs|vsock_backend)\ = ]]; then
        every_path_installed=0
    fi
    [[ $line =~ ^state_dir\ = ]] && line="state_dir = \"$scratch/state\""
    printf '%s\n' "$line"
done <"$root/etc/podvisor/config.toml" >"$config"
[ $every_path_installed -eq 1 ] || fail "the installed config names a kernel, rootfs or vsock backend the package lacks"
sed -i '/^conf_dir *=/d' "$config"
if grep -q '^\[cni\]' "$config"; then
    sed -i "/^\[cni\]/a conf_dir = \"$scratch/net.d\"" "$config"
else
    printf '\n[cni]\nconf_dir = "%s"\n' "$scratch/net.d" >>"$config"
fi
mkdir "$scratch/net.d"
sed -e "s/\"podvisor0\"/\"$bridge\"/" -e 's|10.77.0.0/16|10.214.249.0/24|' \
    -e "s|\"type\": \"host-local\",|\"type\": \"host-local\", \"dataDir\": \"$scratch/ipam\",|" \
    "$root/etc/cni/net.d/10-podvisor.conflist" >"$scratch/net.d/10-podvisor.conflist"
grep -q "$bridge" "$scratch/net.d/10-podvisor.conflist" && grep -q "$scratch/ipam" "$scratch/net.d/10-podvisor.conflist" ||
    fail "could not move the default network onto the test's bridge"

installed "$podvisor" image import --config "$config" "$demo:latest" demo >/dev/null
output=$(installed "$podvisor" run --rm --timeout 600 --config "$config" demo -- \
    sh -c 'echo "installed podvisor: $(uname -r), $(ip -4 -o addr show eth0 | wc -l) address on eth0"')
log "$output"
[[ $output == "installed podvisor: "*", 1 address on eth0" ]] || fail "the pod's output: $output"
[ -z "$(installed "$podvisor" pods --config "$config" | awk 'NR > 1')" ] || fail "run --rm left a pod"
log "passed in $(($(date +%s) - started)) s"
