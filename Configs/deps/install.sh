#!/usr/bin/env bash
# Installs podvisor's host dependencies on Debian 12 (run as root; `make deps`).
#   install.sh           install what is missing (fast no-op when all is present)
#   install.sh --check   report what is missing, change nothing; exit 1 if anything is
# Environment:
#   PODVISOR_CNI_CONF_DIR    where the default pod network goes when none is there (default /etc/cni/net.d)
#   PODVISOR_LIBEXEC         where vhost-device-vsock goes (default /usr/local/libexec/podvisor)
#   PODVISOR_DEPS_REFRESH=1  fetch vhost-device-vsock again even if the pinned version is installed
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
libexec=${PODVISOR_LIBEXEC:-/usr/local/libexec/podvisor}
vsock_bin=$libexec/vhost-device-vsock
# Records which pin the installed binary was fetched for, so a changed pin refetches.
vsock_stamp=$libexec/vhost-device-vsock.deb-version
check_only=0
[ "${1:-}" = "--check" ] && check_only=1

log() { printf 'deps: %s\n' "$*"; }
warn() { printf 'deps: WARNING: %s\n' "$*" >&2; }
die() { printf 'deps: error: %s\n' "$*" >&2; exit 1; }

missing_packages() {
    local p
    grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$here/packages.txt" | tr -d '[:blank:]' |
        while read -r p; do
            # "ii " = installed and configured; anything else (absent, rc, half-installed) counts as missing.
            [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" = "ii " ] || echo "$p"
        done
}

vsock_pin() { tr -d '[:space:]' <"$here/vhost-device-vsock.version"; }

vsock_ok() {
    [ -x "$vsock_bin" ] && "$vsock_bin" --version >/dev/null 2>&1 && [ -f "$vsock_stamp" ] || return 1
    [ "${PODVISOR_DEPS_REFRESH:-0}" = 1 ] && return 1
    # Stamp line: "pinned=<pin> installed=<version>"; a fallback install still satisfies its pin.
    [ "$(sed -n 's/^pinned=\([^ ]*\).*/\1/p' "$vsock_stamp")" = "$(vsock_pin)" ]
}

# The libvirt-qemu user, /dev/kvm and the default pod network (shared with make install and the package).
. "$here/node-setup.sh"
cni_conf_dir=${PODVISOR_CNI_CONF_DIR:-/etc/cni/net.d}

# --- check ------------------------------------------------------------------------
[ -f "$here/packages.txt" ] && [ -f "$here/vhost-device-vsock.version" ] || die "missing files beside $0"
mapfile -t missing < <(missing_packages)
need=0
[ ${#missing[@]} -eq 0 ] || { log "missing packages: ${missing[*]}"; need=1; }
vsock_ok || { log "vhost-device-vsock $(vsock_pin) not installed at $vsock_bin"; need=1; }
qemu_user_ok || { log "user/group libvirt-qemu missing"; need=1; }
kvm_ok || { log "/dev/kvm not usable by group kvm / user libvirt-qemu"; need=1; }
cni_ok "$cni_conf_dir" || { log "no CNI network in $cni_conf_dir"; need=1; }
if [ $need -eq 0 ]; then
    log "all dependencies present (vhost-device-vsock: $vsock_bin)"
    exit 0
fi
[ $check_only -eq 1 ] && exit 1
[ "$(id -u)" -eq 0 ] || die "must run as root (try: sudo make deps)"

# --- apt packages -----------------------------------------------------------------
# Debian's containerd package enables containerd.service and, under a running systemd, starts it at once with
# its default config: a second CRI on /run/containerd/containerd.sock (root /var/lib/containerd) that nobody
# asked for. podvisor's host pods run in a containerd instance of their own (podvisor-containerd.service, its
# own socket, root and state), so when this script installs the package it keeps Debian's service from
# starting (a runtime mask during the install) and leaves it disabled. A containerd installed before is the
# operator's and is left as it is.
systemd_running() { [ -d /run/systemd/system ]; }
fresh_containerd=0
for p in "${missing[@]}"; do [ "$p" = containerd ] && fresh_containerd=1; done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    if [ $fresh_containerd -eq 1 ] && systemd_running; then systemctl mask --runtime containerd.service >/dev/null; fi
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [ $fresh_containerd -eq 1 ]; then
    if command -v systemctl >/dev/null; then
        systemctl disable containerd.service >/dev/null 2>&1 || true # also without a running systemd
    else
        rm -f /etc/systemd/system/multi-user.target.wants/containerd.service
    fi
    if systemd_running; then
        systemctl unmask --runtime containerd.service >/dev/null
        systemctl stop containerd.service 2>/dev/null || true
    fi
    log "Debian's containerd.service left disabled; podvisor's host pods use podvisor-containerd.service (Configs/systemd)"
fi
[ -x /usr/lib/qemu/virtiofsd ] || die "/usr/lib/qemu/virtiofsd missing (package qemu-system-common)"

# --- libvirt-qemu user, /dev/kvm, the default pod network ------------------------
make_qemu_user
make_kvm_usable
install_cni "$cni_conf_dir" "$here/../cni/10-podvisor.conflist"

# --- vhost-device-vsock from Debian unstable --------------------------------------
# Not in bookworm; the sid package (Rust, needs only glibc >= 2.34 and libgcc_s) runs on
# Debian 12. Fetch it with a private apt configuration so the system's sources, lists and
# pinning stay untouched; the archive location is taken from the system's own config.

# Prints a deb822 stanza for sid built from the system's main archive entry (the one
# whose Suites has the bare release codename), from *.sources or one-line sources.list.
sid_sources() {
    local codename=$1 f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        # Paragraphs are separated by blank lines; continuation lines (leading blank) belong
        # to the field above (e.g. an inline Signed-By key). Copy every field except the
        # ones that select the suite.
        awk -v want="$codename" '
            function flush(   i, ok, t, n, s, w) {
                ok = 0; t = 0
                n = split(val["types"], w, /[ \t]+/)
                for (i = 1; i <= n; i++) if (w[i] == "deb") t = 1
                n = split(val["suites"], s, /[ \t]+/)
                for (i = 1; i <= n; i++) if (s[i] == want) ok = 1
                if (tolower(val["enabled"]) == "no") ok = 0
                if (ok && t && !done) {
                    print "Types: deb"
                    for (i = 1; i <= nf; i++) {
                        if (key[i] == "types" || key[i] == "suites" || key[i] == "components" || key[i] == "enabled") continue
                        print raw[i]
                    }
                    print "Suites: sid"
                    print "Components: main"
                    done = 1
                }
                nf = 0; delete val; delete key; delete raw
            }
            /^#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^[ \t]/ { if (nf) raw[nf] = raw[nf] "\n" $0; next }
            {
                k = tolower(substr($0, 1, index($0, ":") - 1))
                v = substr($0, index($0, ":") + 1); sub(/^[ \t]+/, "", v); sub(/[ \t]+$/, "", v)
                nf++; key[nf] = k; raw[nf] = $0; val[k] = v
            }
            END { flush(); if (!done) exit 1 }
        ' "$f" && return 0
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        # deb [opt=val ...] URI SUITE COMPONENT...
        awk -v want="$codename" '
            $1 != "deb" { next }
            {
                line = $0; sub(/^deb[ \t]+/, "", line); opts = ""
                if (substr(line, 1, 1) == "[") {
                    opts = substr(line, 2, index(line, "]") - 2); line = substr(line, index(line, "]") + 1)
                }
                n = split(line, w, /[ \t]+/); j = 0
                for (i = 1; i <= n; i++) if (w[i] != "") a[++j] = w[i]
                if (j < 2 || a[2] != want) next
                print "Types: deb"
                print "URIs: " a[1]
                m = split(opts, o, /[ \t]+/)
                for (i = 1; i <= m; i++) {
                    split(o[i], kv, "=")
                    if (kv[1] == "signed-by") print "Signed-By: " kv[2]
                    else if (kv[1] == "arch") print "Architectures: " kv[2]
                    else if (kv[1] == "trusted") print "Trusted: " kv[2]
                }
                print "Suites: sid"
                print "Components: main"
                found = 1; exit
            }
            END { if (!found) exit 1 }
        ' "$f" && return 0
    done
    return 1
}

install_vsock() {
    local codename work pin ver deb
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    [ -n "$codename" ] || die "cannot tell the Debian release from /etc/os-release"
    pin=$(vsock_pin)
    work=$(mktemp -d /var/tmp/podvisor-deps.XXXXXX)
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/dl"
    sid_sources "$codename" >"$work/sid.sources" ||
        die "no '$codename' entry of type deb in /etc/apt/sources.list{,.d/*} to derive a sid source from"
    # apt drops to _apt for downloads; let it write there (otherwise it warns and runs as root).
    if getent passwd _apt >/dev/null; then chown -R _apt:root "$work/lists" "$work/dl"; fi
    local apt_opts=(
        -o "Dir::Etc::SourceList=$work/sid.sources" -o Dir::Etc::SourceParts=/nonexistent
        -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
        -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/nonexistent
        -o Acquire::Languages=none -o APT::Default-Release=
    )
    log "fetching the unstable package index (private apt state in $work)"
    apt-get "${apt_opts[@]}" update -q >"$work/update.log" 2>&1 || { cat "$work/update.log" >&2; die "apt-get update (sid) failed"; }
    # Versions offered by sid, newest first.
    mapfile -t versions < <(apt-cache "${apt_opts[@]}" madison vhost-device-vsock | awk -F'|' '{gsub(/ /, "", $2); print $2}')
    [ ${#versions[@]} -gt 0 ] || die "vhost-device-vsock not found in unstable"
    ver=$pin
    if ! printf '%s\n' "${versions[@]}" | grep -qxF "$pin"; then
        ver=${versions[0]}
        warn "vhost-device-vsock $pin is no longer in unstable; using the newest, $ver (update Configs/deps/vhost-device-vsock.version once tested)"
    fi
    (cd "$work/dl" && apt-get "${apt_opts[@]}" download -q "vhost-device-vsock=$ver" >"$work/download.log" 2>&1) ||
        { cat "$work/download.log" >&2; die "apt-get download vhost-device-vsock=$ver failed"; }
    deb=$(find "$work/dl" -maxdepth 1 -name 'vhost-device-vsock_*.deb' | head -n1)
    [ -n "$deb" ] || die "download produced no .deb"
    dpkg-deb -x "$deb" "$work/x"
    [ -x "$work/x/usr/bin/vhost-device-vsock" ] || die "package has no usr/bin/vhost-device-vsock"
    "$work/x/usr/bin/vhost-device-vsock" --version >/dev/null ||
        die "vhost-device-vsock $ver does not run here (library versions?): try another pin"
    install -d -m 0755 "$libexec"
    # Replace atomically: a running backend keeps its old inode.
    install -m 0755 "$work/x/usr/bin/vhost-device-vsock" "$vsock_bin.new"
    mv -f "$vsock_bin.new" "$vsock_bin"
    echo "pinned=$pin installed=$ver" >"$vsock_stamp"
    log "installed vhost-device-vsock $ver: $vsock_bin ($("$vsock_bin" --version))"
}

vsock_ok || install_vsock
qemu_user_ok || die "libvirt-qemu user/group still missing"
kvm_ok || die "/dev/kvm still not usable by libvirt-qemu"
log "done; vhost-device-vsock: $vsock_bin, virtiofsd: /usr/lib/qemu/virtiofsd"
