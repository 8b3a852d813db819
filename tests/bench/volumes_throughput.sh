#!/bin/bash
# Benchmark (not a test): a host directory bound into a container vs the same directory in a
# VM through virtio-fs (virtiofsd), in one run — sequential write and read of a 64 MiB file
# (dd, 1 MiB blocks) and a metadata-heavy job, unpacking a tar of 10,000 small files — with the
# ratios. Times are taken inside the workload (/proc/uptime), so start-up is not counted. The
# VM rows need a KVM that boots unmodified guests: run it inside the test host with
# tests/bench/volumes.
#
# usage: tests/bench/volumes_throughput.sh [FILES]   (as root, after a build)
set -euo pipefail
files=${1:-10000}
repo=$(cd "$(dirname "$0")/../.." && pwd)
isola=${ISOLA_BIN:-$repo/target/release/isola}
export ISOLA_ROOT=$(mktemp -d /tmp/isola-bench-vol.XXXXXX)
trap '"$isola" cleanup >/dev/null 2>&1 || true; rm -rf "$ISOLA_ROOT"' EXIT
"$repo/scripts/make-sample-image" "$isola" >/dev/null
data=$ISOLA_ROOT/data
mkdir -p "$data/tree"
for i in $(seq 1 "$files"); do
    d=$data/tree/d$((i % 100))
    [ -d "$d" ] || mkdir "$d"
    echo "file $i" > "$d/f$i"
done
tar -C "$data" -cf "$data/tree.tar" tree
rm -rf "$data/tree"

# Inside: centiseconds since boot, before and after each step; prints "write read untar" in ms.
job='t() { cut -d" " -f1 /proc/uptime | tr -d .; }
a=$(t); dd if=/dev/zero of=/data/big bs=1M count=64 conv=fsync 2>/dev/null; b=$(t)
dd if=/data/big of=/dev/null bs=1M 2>/dev/null; c=$(t)
mkdir /data/out; tar -C /data/out -xf /data/tree.tar; d=$(t)
echo $(((b-a)*10)) $(((c-b)*10)) $(((d-c)*10))
rm -rf /data/out /data/big'
declare -A ms
measure() {
    local out
    out=$("$isola" run --rm --network none --isolation "$1" -v "$data:/data" sample sh -c "$job")
    ms[$1]=$out
}
measure container
levels=(container)
if "$isola" doctor --json | grep -q '"vm": true'; then
    measure vm
    levels+=(vm)
else
    echo "NOT MEASURED HERE: VM (this host's KVM cannot boot an unmodified guest; run tests/bench/volumes)"
fi
mbs() { awk -v t="$1" 'BEGIN { if (t > 0) printf "%.1f", 64 * 1000 / t; else print "inf" }'; }
echo "A host directory in the workload: 64 MiB written and read back (dd, 1 MiB blocks), a tar of $files files unpacked:"
printf '  %-10s %12s %12s %14s\n' level "write MB/s" "read MB/s" "untar ms"
for l in "${levels[@]}"; do
    read -r w r u <<< "${ms[$l]}"
    printf '  %-10s %12s %12s %14s\n' "$l" "$(mbs "$w")" "$(mbs "$r")" "$u"
done
if [ -n "${ms[vm]:-}" ]; then
    read -r cw cr cu <<< "${ms[container]}"
    read -r vw vr vu <<< "${ms[vm]}"
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
    echo "  vm/container: write $(ratio "$cw" "$vw")x, read $(ratio "$cr" "$vr")x (throughput), untar $(ratio "$vu" "$cu")x the time"
fi
