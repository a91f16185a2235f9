#!/bin/bash
# Pull throughput: `podvisor image pull` (fetch, verify, unpack) against `skopeo copy` of the same image to an
# OCI layout (fetch, verify) from one local docker-registry, alternating, RUNS times each, medians compared.
# The image: three layers of 20 MiB of random bytes (incompressible), built with umoci.
# Usage: bench-pull.sh PODVISOR_BINARY [RUNS] [REPORT.md] [PODVISOR_OPTIONS…]   (with REPORT, rewrites its
# bench:image-pull section; the options, e.g. --kernel and --initrd, go to every podvisor command: the CLI's
# in-process runtime wants a guest image even to pull)
set -euo pipefail
podvisor=$(realpath "$1")
runs=${2:-5}
report=${3:-}
options=("${@:4}")
work=$(mktemp -d /tmp/podvisor-bench-pull.XXXXXX)
registry_pid=
cleanup() { [ -n "$registry_pid" ] && kill "$registry_pid" && wait "$registry_pid" || true; rm -rf "$work"; }
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
YAML
docker-registry serve "$work/config.yml" >/dev/null 2>&1 &
registry_pid=$!
until curl -sf "http://127.0.0.1:$port/v2/" >/dev/null; do sleep 0.05; done

layout=$work/layout
umoci init --layout "$layout"
umoci new --image "$layout:big"
for i in 1 2 3; do
    umoci unpack --image "$layout:big" "$work/bundle" >/dev/null
    head -c 20M /dev/urandom > "$work/bundle/rootfs/data$i"
    umoci repack --image "$layout:big" "$work/bundle"
    rm -rf "$work/bundle"
done
image=127.0.0.1:$port/big:latest
skopeo copy --quiet --dest-tls-verify=false "oci:$layout:big" "docker://$image"

now() { date +%s%N; }
podvisor_times=()
skopeo_times=()
for _ in $(seq "$runs"); do
    rm -rf "$work/store" "$work/oci"
    start=$(now)
    "$podvisor" image pull --state-dir "$work/store" "${options[@]}" "$image" >/dev/null
    podvisor_times+=($(($(now) - start)))
    start=$(now)
    skopeo copy --quiet --src-tls-verify=false "docker://$image" "oci:$work/oci:big"
    skopeo_times+=($(($(now) - start)))
done
size=$("$podvisor" image ls --state-dir "$work/store" "${options[@]}" --output json | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["size"])')

section=$(python3 - "$size" "${podvisor_times[*]}" "${skopeo_times[*]}" "$1" <<'PY'
import statistics, sys
size = int(sys.argv[1]) / 1048576
binary = sys.argv[4]
ours = statistics.median(int(t) for t in sys.argv[2].split()) / 1e9
theirs = statistics.median(int(t) for t in sys.argv[3].split()) / 1e9
runs = len(sys.argv[2].split())
print(f"`Tests/TestSupport/Fixtures/bench-pull.sh` ({runs} runs each, medians), a {size:.1f} MiB image of three "
      f"incompressible layers from a local docker-registry:\n\n"
      f"| | median | throughput |\n|---|---|---|\n"
      f"| `podvisor image pull` (fetch, verify, unpack; `{binary}`) | {ours:.2f} s | {size / ours:.0f} MiB/s |\n"
      f"| `skopeo copy` to an OCI layout (fetch, verify) | {theirs:.2f} s | {size / theirs:.0f} MiB/s |\n\n"
      f"Ratio of throughputs, podvisor / skopeo: **{theirs / ours:.2f}**.")
PY
)
echo "$section"
if [ -n "$report" ]; then
    python3 - "$report" "$section" <<'PY'
import sys
path, section = sys.argv[1], sys.argv[2]
text = open(path).read()
start, end = "<!-- bench:image-pull:start -->", "<!-- bench:image-pull:end -->"
if start not in text:
    text = text.rstrip("\n") + f"\n\n## Image pull\n{start}\n{end}\n"
before, rest = text.split(start, 1)
after = rest.split(end, 1)[1]
open(path, "w").write(f"{before}{start}\n{section}\n{end}{after}")
PY
fi
