#!/bin/bash
# The inside of tests/bench/podman_vm (in the emulated test host): a podman with its own
# storage and both runtimes, the sample image pulled from isola's store, then RUNS runs of each,
# alternating; medians and the ratio.
set -euo pipefail
runs=$1
isola=$PWD/target/release/isola
work=/tmp/pvb.$$
mkdir -p "$work"
export ISOLA_ROOT=$work/isola
scripts/make-sample-image "$isola" >/dev/null
ln -s "$isola" "$work/isola-vm"
cat > "$work/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
[engine.runtimes]
isola = ["$isola"]
isola-vm = ["$work/isola-vm"]
CONF
export CONTAINERS_CONF=$work/containers.conf
podman=(podman --root "$work/root" --runroot "$work/run" --tmpdir "$work/tmp")
cp -a "$ISOLA_ROOT/images" "$work/layout"
rm -f "$work/layout/index.lock"
image=$("${podman[@]}" pull -q "oci:$work/layout:sample:latest")
now_us() { echo "${EPOCHREALTIME/./}"; } # bash's clock: busybox date has no %N
one() { # one RUNTIME: milliseconds of one run
    local s e
    s=$(now_us)
    "${podman[@]}" --runtime "$1" run --rm --network none "$image" true
    e=$(now_us)
    echo $(( (e - s) / 1000 ))
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
one isola >/dev/null; one isola-vm >/dev/null
: > "$work/isola.ms"; : > "$work/vm.ms"
for _ in $(seq "$runs"); do
    one isola-vm >> "$work/vm.ms"
    one isola >> "$work/isola.ms"
done
vm=$(median < "$work/vm.ms")
ct=$(median < "$work/isola.ms")
echo "podman run --rm sample true in the emulated test host, $runs runs each (medians):"
echo "  --runtime isola-vm  $vm ms"
echo "  --runtime isola     $ct ms"
awk -v a="$vm" -v b="$ct" 'BEGIN { printf "  ratio isola-vm/isola: %.2fx\n", a / b }'
"${podman[@]}" rm -a -f >/dev/null 2>&1 || true
