#!/bin/bash
# Builds the integration tests' images into an OCI layout from Debian's busybox-static with umoci, then pushes
# them with skopeo to the registry at $2 (host:port, plain HTTP):
#   busybox:latest, busybox:1.0  two layers: busybox + /etc, then a layer deleting /etc/removed (a whiteout) and
#                                making /var/cache opaque; config User 1002
#   named-user:latest            one layer, config User www-data:1004
#   groups:latest                busybox with /etc/passwd and /etc/group: default-user (1000) listed in group
#                                extra (50000), as critest's predefined-group image
#   multi:latest                 an index with linux/arm64 and linux/amd64 (the amd64 one has /platform = amd64)
#   pause:3.10                   one layer (the mirror test names it registry.k8s.io/pause:3.10)
# Usage: make-images.sh WORKDIR REGISTRY
set -euo pipefail
work=$1
registry=$2
layout=$work/layout
rm -rf "$work" && mkdir -p "$work"
umoci init --layout "$layout"

# new_image TAG: an empty image; add_layer TAG SCRIPT: unpack, run SCRIPT in the rootfs, repack.
new_image() { umoci new --image "$layout:$1"; umoci config --image "$layout:$1" --os linux --architecture "${2:-amd64}"; }
add_layer() {
    local bundle=$work/bundle-$1
    rm -rf "$bundle"
    umoci unpack --image "$layout:$1" "$bundle"
    (cd "$bundle/rootfs" && eval "$2")
    umoci repack --image "$layout:$1" "$bundle"
    rm -rf "$bundle"
}

new_image busybox
add_layer busybox 'mkdir -p bin etc var/cache && cp /bin/busybox bin/busybox && ln -s busybox bin/sh &&
    echo gone > etc/removed && echo kept > etc/kept && echo old > var/cache/old && chmod 4755 bin/busybox'
add_layer busybox 'rm etc/removed && rm -rf var/cache && mkdir -p var/cache && echo new > var/cache/new'
umoci config --image "$layout:busybox" --config.user 1002 --config.cmd /bin/sh
umoci tag --image "$layout:busybox" 1.0

new_image named-user
add_layer named-user 'mkdir -p etc && echo named > etc/name'
umoci config --image "$layout:named-user" --config.user www-data:1004

new_image groups
add_layer groups 'mkdir -p bin etc && cp /bin/busybox bin/busybox && ln -s busybox bin/sh &&
    printf "root:x:0:0:root:/root:/bin/sh\ndefault-user:x:1000:1000::/:/bin/sh\n" > etc/passwd &&
    printf "root:x:0:\ndefault-user:x:1000:\nextra:x:50000:default-user\n" > etc/group'
umoci config --image "$layout:groups" --config.user 1000 --config.cmd /bin/sh

new_image pause
add_layer pause 'mkdir -p etc && echo pause > etc/pause'

for arch in arm64 amd64; do
    new_image "multi-$arch" "$arch"
    add_layer "multi-$arch" "echo $arch > platform"
done

# An index over the two platform manifests, added to the layout as its own blob and tagged "multi".
python3 - "$layout" <<'PY'
import hashlib, json, os, sys
layout = sys.argv[1]
index_path = os.path.join(layout, "index.json")
top = json.load(open(index_path))
by_tag = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in top["manifests"]}
entries = []
for arch in ["arm64", "amd64"]:
    d = dict(by_tag[f"multi-{arch}"])
    d.pop("annotations", None)
    d["platform"] = {"os": "linux", "architecture": arch}
    entries.append(d)
body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries}).encode()
digest = hashlib.sha256(body).hexdigest()
open(os.path.join(layout, "blobs", "sha256", digest), "wb").write(body)
top["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:" + digest,
                         "size": len(body), "annotations": {"org.opencontainers.image.ref.name": "multi"}})
json.dump(top, open(index_path, "w"))
PY

push() { skopeo copy --quiet --all --dest-tls-verify=false "oci:$layout:$1" "docker://$registry/$2"; }
push busybox busybox:latest
push 1.0 busybox:1.0
push named-user named-user:latest
push groups groups:latest
push pause pause:3.10
push multi multi:latest
