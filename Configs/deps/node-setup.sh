# What a node needs besides files and packages: the user QEMU runs as, /dev/kvm usable by it, a pod network.
# A library (bash, sourced; the caller defines log): `make deps` (install.sh), `make install` (the pod network)
# and the Debian package's postinst, which sources the copy installed in <prefix>/share/podvisor, share it.

# libvirt's QEMU driver (Debian build, also qemu:///embed as root) runs QEMU as user and group "libvirt-qemu"
# and fails to open a connection if they do not exist. Only libvirt-daemon-system's postinst creates them; we
# do not want that package (daemons, default network, polkit).
qemu_user_ok() { getent group libvirt-qemu >/dev/null && getent passwd libvirt-qemu >/dev/null; }

# Mirrors libvirt-daemon-system's ids (64055) when free.
make_qemu_user() {
    if ! getent group libvirt-qemu >/dev/null; then
        local gid_opt=()
        # -K: Debian's ids sit above login.defs' SYS_GID_MAX; say so instead of warning.
        getent group 64055 >/dev/null || gid_opt=(--gid 64055 -K SYS_GID_MAX=64055)
        groupadd --system "${gid_opt[@]}" libvirt-qemu
        log "created group libvirt-qemu"
    fi
    if ! getent passwd libvirt-qemu >/dev/null; then
        local uid_opt=()
        getent passwd 64055 >/dev/null || uid_opt=(--uid 64055 -K SYS_UID_MAX=64055)
        useradd --system "${uid_opt[@]}" --gid libvirt-qemu --no-create-home --home-dir /var/lib/libvirt \
            --shell /usr/sbin/nologin --comment "Libvirt Qemu" libvirt-qemu
        log "created user libvirt-qemu"
    fi
}

# Where /dev/kvm exists, QEMU's user must be able to open it, as Debian's udev rule (root:kvm 0660) and
# libvirt-daemon-system arrange. Otherwise libvirt finds KVM "enabled" when it probes QEMU (as root) but
# unusable for the QEMU user, discards its capability cache on every lookup and re-probes (~4 s each).
kvm_ok() {
    [ -e /dev/kvm ] || return 0
    [ "$(stat -c %G:%a /dev/kvm)" = kvm:660 ] && id -nG libvirt-qemu 2>/dev/null | tr ' ' '\n' | grep -qx kvm
}

make_kvm_usable() {
    # Without udev nobody sets the device's group, so do what the udev rule would.
    if [ -e /dev/kvm ]; then
        getent group kvm >/dev/null || groupadd --system kvm
        chgrp kvm /dev/kvm
        chmod 0660 /dev/kvm
    fi
    if getent group kvm >/dev/null && ! id -nG libvirt-qemu | tr ' ' '\n' | grep -qx kvm; then
        usermod -a -G kvm libvirt-qemu
    fi
}

# The pod network: podvisor's default conflist, only where the CNI conf dir has no network yet (an operator's
# or a CNI DaemonSet's network is never replaced).
cni_ok() { # CONF_DIR
    compgen -G "$1/*.conflist" >/dev/null || compgen -G "$1/*.conf" >/dev/null || compgen -G "$1/*.json" >/dev/null
}

install_cni() { # CONF_DIR CONFLIST
    cni_ok "$1" && return 0
    install -d -m 0755 "$1"
    install -m 0644 "$2" "$1/10-podvisor.conflist"
    log "installed the default pod network (bridge podvisor0, 10.77.0.0/16): $1/10-podvisor.conflist"
}
