#!/bin/bash
# Benchmark (not a test), run inside the emulated test host by tests/bench/vm_inside.sh: the
# VMMs themselves, side by side on the same guest kernel (isola's target/guest/vmlinux), the
# same trivial init (reboot-init: marks its start, resets the machine), 256 MiB and 1 vCPU:
#   - isola, given that init through ISOLA_GUEST_DIR (`isola run --isolation vm sample true`
#     whose guest resets at once);
#   - Firecracker (FIRECRACKER=PATH; --no-api, a config file, reboot=k: exits 0 on the reset);
#   - QEMU microvm, lean: direct kernel boot, no devices but the serial port (reboot=t);
#   - and isola's full path, `isola run --isolation vm sample true` with its own guest init.
# RUNS rounds, alternating, with the host's transparent huge pages as they are: per VMM, start
# to exit and start to the init's first act (isola: its boot timer; the others: the record
# separator (0x1e) the init writes to COM1, stamped as their serial output arrives — a byte no
# VMM's log line has). Then one more run each with THP off (a touched page is 4 KiB everywhere):
# peak RSS (GNU time) and the VMM overhead, peak RSS less the guest memory the same guest
# touched (isola's report).
#
# usage (inside the test host, ISOLA_ROOT holding the sample image): vm_peers_inside.sh RUNS
set -euo pipefail
runs=${1:-5}
repo=$(cd "$(dirname "$0")/../.." && pwd)
mem=256
now() { echo "${EPOCHREALTIME/./}"; }
ms() { echo $(( ($2 - $1) / 1000 )); }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

thp_file=/sys/kernel/mm/transparent_hugepage/enabled
thp=$(sed -n 's/.*\[\(.*\)\].*/\1/p' "$thp_file" 2>/dev/null || echo unknown)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
init="$repo/target/x86_64-unknown-linux-gnu/release/reboot-init"
[ -x "$init" ] || { echo "bench: $init is missing (scripts/lib.sh build_all builds it)" >&2; exit 1; }
mkdir -p "$work/guest" "$work/initramfs"
ln -s "$repo/target/guest/vmlinux" "$work/guest/vmlinux"
cp "$init" "$work/guest/init"
cp "$init" "$work/initramfs/init"
(cd "$work/initramfs" && echo init | cpio -o -H newc --quiet) > "$work/init.cpio"
cmdline="console=ttyS0 panic=-1 nomodule 8250.nr_uarts=1 rdinit=/init quiet"

# Reads a VMM's serial output; prints when the init's mark came (microseconds), or nothing.
stamp() {
    local c
    while IFS= read -r -N1 -d '' c; do
        if [ "$c" = $'\x1e' ]; then now; cat > /dev/null; return; fi
    done
}

cat > "$work/fc.json" <<JSON
{"boot-source": {"kernel_image_path": "$repo/target/guest/vmlinux", "initrd_path": "$work/init.cpio",
                 "boot_args": "$cmdline reboot=k"},
 "drives": [], "machine-config": {"vcpu_count": 1, "mem_size_mib": $mem}}
JSON
fc=("$FIRECRACKER" --no-api --config-file "$work/fc.json")
qemu=(qemu-system-x86_64 -M microvm,acpi=off,x-option-roms=off,rtc=off -enable-kvm -cpu host -m $mem -smp 1
      -nodefaults -no-user-config -display none -no-reboot -L /usr/share/qemu
      -kernel "$repo/target/guest/vmlinux" -initrd "$work/init.cpio" -append "$cmdline reboot=t"
      -serial stdio)

# One run of a peer VMM: "wall_ms init_ms peak_kib" (init_ms empty if no mark came).
peer() {
    local t0 t1 at rss
    t0=$(now)
    at=$( { /usr/bin/time -o "$work/rss" -f %M timeout 120 "$@" < /dev/null 2> "$work/peer.err" || true; } | stamp)
    t1=$(now)
    rss=$(tail -1 "$work/rss")
    echo "$(ms "$t0" "$t1") ${at:+$(ms "$t0" "$at")} $rss"
}
# One isola run: "wall_ms init_ms peak_kib"; its init's start from its own --timings.
isola_once() {
    local t0 t1
    t0=$(now)
    /usr/bin/time -o "$work/rss" -f %M isola run --rm --network none --isolation vm --timeout 120 \
        --timings sample true 2> "$work/timings" || true
    t1=$(now)
    echo "$(ms "$t0" "$t1") $(awk '/timings: isola start/ { s = -$4 } /timings: init start/ { i = $4 } END { printf "%d", s + i }' "$work/timings") $(tail -1 "$work/rss")"
}

declare -A wall init rss
names=("isola, reboot-init" "Firecracker, reboot-init" "QEMU microvm lean, reboot-init" "isola run sample true")
one() {
    case "$1" in
        "isola, reboot-init") ISOLA_GUEST_DIR="$work/guest" isola_once ;;
        Firecracker*) peer "${fc[@]}" ;;
        QEMU*) peer "${qemu[@]}" ;;
        *) isola_once ;;
    esac
}
[ -n "${FIRECRACKER:-}" ] || names=("${names[0]}" "${names[2]}" "${names[3]}")
# Round 0 is not counted: it builds the image's root disk and brings every binary into the
# page cache.
for round in $(seq 0 "$runs"); do
    for name in "${names[@]}"; do
        read -r w i _ <<< "$(one "$name")"
        [ "$round" = 0 ] && continue
        wall[$name]+="$w "; init[$name]+="${i:-?} "
    done
done
# Memory, with THP off.
[ -w "$thp_file" ] && echo never > "$thp_file"
for name in "${names[@]}"; do
    read -r _ _ k <<< "$(one "$name")"
    rss[$name]=$k
done
# The guest memory this guest touches, by isola's report with the trivial init.
touched=$( { ISOLA_GUEST_DIR="$work/guest" isola run --rm --network none --isolation vm --timeout 120 \
    --timings sample true 2>&1 || true; } | sed -n 's/.*guest memory touched \([0-9.]*\) MiB.*/\1/p')

[ -w "$thp_file" ] && [ "$thp" != unknown ] && echo "$thp" > "$thp_file"

echo "VMMs on one kernel and one trivial init, $runs runs each, alternating, $mem MiB, 1 vCPU, THP $thp (medians)"
printf '  %-34s %14s %14s %16s %16s\n' "" "start to exit" "to init" "peak RSS (THP off)" "VMM overhead"
for name in "${names[@]}"; do
    mw=$(printf '%s\n' ${wall[$name]} | median)
    mi=$(printf '%s\n' ${init[$name]} | grep -v '?' | median)
    printf '  %-34s %11s ms %11s ms %14.1f MiB %12.1f MiB   (%s)\n' "$name" "$mw" "${mi:-?}" \
        "$(awk -v k="${rss[$name]}" 'BEGIN { print k / 1024 }')" \
        "$(awk -v k="${rss[$name]}" -v t="$touched" 'BEGIN { print k / 1024 - t }')" "${wall[$name]% }"
done
echo "  guest memory the trivial guest touched (isola's report, THP off): $touched MiB"
if [ -z "${FIRECRACKER:-}" ]; then
    echo "  Firecracker: NOT MEASURED (no binary; FIRECRACKER=PATH)"
    exit 0
fi
f=$(printf '%s\n' ${wall["Firecracker, reboot-init"]} | median)
for name in "isola, reboot-init" "isola run sample true" "QEMU microvm lean, reboot-init"; do
    m=$(printf '%s\n' ${wall[$name]} | median)
    awk -v a="$m" -v b="$f" -v n="$name" 'BEGIN { printf "  ratio %s / Firecracker: %.2fx\n", n, a / b }'
done
echo "  (targets: isola with the trivial init <= 0.90x, the full isola run <= 1.00x, VMM overhead <= 3 MiB)"
