#!/bin/bash
# Benchmark (not a test), run inside the emulated test host by tests/bench/vm (the one place
# here where KVM boots unmodified guests). Prints, from one run:
#  0. the VMMs alone: isola, Firecracker and a lean QEMU microvm on the same kernel and trivial
#     init (tests/bench/vm_peers_inside.sh), and isola's full run;
#  1. start-to-exit of `true`: `isola run --isolation vm sample true` against QEMU microvm
#     booting the same guest kernel, the same initramfs (the one isola built, kept with
#     ISOLA_DEBUG_INITRAMFS), the same root disk image and the same memory, with -enable-kvm;
#  2. the VMM's memory overhead: isola's peak RSS minus the guest memory the guest touched,
#     with QEMU's peak RSS beside it;
#  3. PageRank on bare metal (the test host), in a container, in a VM: same input, ratios.
# The test host is itself emulated (TCG), so absolute times are far slower than on hardware;
# the ratios, measured side by side, are what to read.
#
# usage (inside the test host): vm_inside.sh RUNS PAGERANK_NODES PAGERANK_ITERATIONS
set -euo pipefail
runs=${1:-5}
nodes=${2:-100000}
iters=${3:-10}
repo=$(cd "$(dirname "$0")/../.." && pwd)
export ISOLA_ROOT=/tmp/isola-bench
mkdir -p "$ISOLA_ROOT"
"$repo/scripts/make-sample-image" "$repo/target/release/isola" >/dev/null
mem=256   # isola's default guest RAM (no --memory); QEMU gets the same

# 0. The VMMs themselves on one kernel and one trivial init: isola, Firecracker, lean QEMU.
bash "$repo/tests/bench/vm_peers_inside.sh" "$runs"

now() { echo "${EPOCHREALTIME/./}"; }   # microseconds (busybox date has no %N)
ms() { echo $(( ($2 - $1) / 1000 )); }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

# What QEMU boots: the same pieces isola uses.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Builds the root disk image, and keeps the very initramfs isola boots (guest init, the
# resolved process, the seccomp filter) for QEMU.
ISOLA_DEBUG_INITRAMFS="$work/initrd.cpio" isola run --rm --network none --isolation vm --timeout 300 sample true
disk=$(ls "$ISOLA_ROOT"/vm/*.ext4)
# QEMU's microvm has no i8042, so its guest resets by triple fault (reboot=t) where isola's
# uses the keyboard controller (reboot=k); ACPI off, so QEMU declares its virtio-mmio devices
# on the command line as isola does.
cmdline="console=ttyS0 reboot=t panic=-1 nomodule 8250.nr_uarts=1 rdinit=/init quiet"
qemu=(qemu-system-x86_64 -M microvm,acpi=off -enable-kvm -cpu host -m $mem -smp 1 -nodefaults -no-user-config
      -nographic -no-reboot -L /usr/share/qemu -bios /usr/share/qemu/qboot.rom
      -kernel "$repo/target/guest/vmlinux" -initrd "$work/initrd.cpio" -append "$cmdline"
      -serial null
      -drive "id=root,file=$disk,format=raw,if=none,readonly=on" -device virtio-blk-device,drive=root
      -device virtio-serial-device -chardev "file,id=ch,path=$work/channel" -device virtconsole,chardev=ch
      -chardev "pipe,id=bt,path=$work/boot-timer" -device isa-debugcon,iobase=0x80,chardev=bt)
# The same boot timer for QEMU: guest init's phase bytes on port 0x80 go to a FIFO (QEMU's
# debug console device), where each is timestamped as it arrives.
mkfifo "$work/boot-timer"
boot_timer() {
    while IFS= read -r -N1 -d '' c; do printf '%d %s\n' "'$c" "$(now)"; done < "$work/boot-timer" > "$work/marks"
}

# The channel QEMU captured must hold the workload's exit frame (kind 3, status 0): proof the
# guest really ran `true` there too.
check_qemu() {
    boot_timer &
    qemu_t0=$(now)
    timeout 120 "${qemu[@]}" </dev/null >/dev/null 2>&1
    wait
    od -An -tx1 -v "$work/channel" | tr -d ' \n' | grep -q '030400000000000000' \
        || { echo "bench: QEMU's guest did not report the workload's exit" >&2; exit 1; }
}
check_qemu

isola_t=(); qemu_t=(); isola_init=(); qemu_init=()
for _ in $(seq "$runs"); do
    t0=$(now); isola run --rm --network none --isolation vm --timeout 300 --timings sample true 2> "$work/timings"; t1=$(now)
    isola_t+=("$(ms "$t0" "$t1")")
    # Guest init's start, from isola's own start (its --timings are from the VMM's start).
    isola_init+=("$(awk '/isola start/ { s = -$4 } /init start/ { i = $4 } END { printf "%d", s + i }' "$work/timings")")
    t0=$(now); check_qemu; t1=$(now)
    qemu_t+=("$(ms "$t0" "$t1")")
    qemu_init+=("$(awk -v t0="$qemu_t0" '$1 == 2 { printf "%d", ($2 - t0) / 1000; exit }' "$work/marks")")
done
mi=$(printf '%s\n' "${isola_t[@]}" | median)
mq=$(printf '%s\n' "${qemu_t[@]}" | median)
ii=$(printf '%s\n' "${isola_init[@]}" | median)
qi=$(printf '%s\n' "${qemu_init[@]}" | median)
echo "VM start-to-exit of \`true\`, $runs runs each, alternating, ${mem} MiB, 1 vCPU"
echo "  isola run --isolation vm sample true        : median $mi ms  (${isola_t[*]})"
echo "  qemu-system-x86_64 -M microvm -enable-kvm   : median $mq ms  (${qemu_t[*]})"
awk -v a="$mi" -v b="$mq" 'BEGIN { printf "  ratio isola/QEMU: %.2fx   (target <= 0.50x)\n", a / b }'
echo "  guest init started, from the VMM process's start: isola median $ii ms (${isola_init[*]}), QEMU median $qi ms (${qemu_init[*]})"
awk -v a="$ii" -v b="$qi" 'BEGIN { printf "  ratio isola/QEMU to guest init: %.2fx\n", a / b }'

if [ -n "${ISOLA_BASELINE:-}" ]; then
    # The same guest artifacts for both, so only the host side differs.
    export ISOLA_GUEST_DIR="$repo/target/guest"
    this=(); base=()
    for _ in $(seq "$runs"); do
        t0=$(now); isola run --rm --network none --isolation vm --timeout 300 sample true; t1=$(now); this+=("$(ms "$t0" "$t1")")
        t0=$(now); "$ISOLA_BASELINE" run --rm --isolation vm --timeout 300 sample true; t1=$(now); base+=("$(ms "$t0" "$t1")")
    done
    mt=$(printf '%s\n' "${this[@]}" | median)
    mb=$(printf '%s\n' "${base[@]}" | median)
    echo "VM start-to-exit of \`true\` against a baseline build ($ISOLA_BASELINE), $runs runs each, alternating"
    echo "  this tree : median $mt ms  (${this[*]})"
    echo "  baseline  : median $mb ms  (${base[*]})"
    awk -v a="$mt" -v b="$mb" 'BEGIN { printf "  ratio this/baseline: %.2fx\n", a / b }'
    unset ISOLA_GUEST_DIR
fi

echo "VMM memory overhead (peak RSS minus guest memory touched), ${mem} MiB guest"
line=$(isola run --rm --network none --isolation vm --timeout 300 --timings sample true 2>&1 | sed -n 's/^timings: memory: //p')
echo "  isola: $line"
touched=$(printf '%s\n' "$line" | sed -n 's/.*guest memory touched \([0-9.]*\) MiB.*/\1/p')
qrss=$(/usr/bin/time -f %M "${qemu[@]}" </dev/null 2>&1 >/dev/null | tail -1)
awk -v q="$qrss" -v t="$touched" 'BEGIN { printf "  QEMU microvm: peak RSS %.1f MiB; less the %.1f MiB the same guest touched under isola: about %.1f MiB of VMM\n", q / 1024, t, q / 1024 - t }'
echo "  (target for isola: overhead <= 5 MiB)"

echo "PageRank $nodes nodes, $iters iterations: bare metal (the test host) vs container vs VM"
pr="$repo/target/x86_64-unknown-linux-gnu/release/pagerank"
expect=$("$pr" "$nodes" "$iters")
bare=(); cont=(); vm=(); vmw=()
for _ in $(seq "$runs"); do
    t0=$(now); out=$("$pr" "$nodes" "$iters"); t1=$(now); bare+=("$(ms "$t0" "$t1")")
    [ "$out" = "$expect" ] || { echo "bench: bare PageRank differs" >&2; exit 1; }
    t0=$(now); out=$(isola run --rm --network none --isolation container sample pagerank "$nodes" "$iters"); t1=$(now)
    cont+=("$(ms "$t0" "$t1")")
    [ "$out" = "$expect" ] || { echo "bench: container PageRank differs" >&2; exit 1; }
    t0=$(now)
    out=$(isola run --rm --network none --isolation vm --timeout 300 --memory 512m --timings sample pagerank "$nodes" "$iters" 2>"$work/timings")
    t1=$(now)
    vm+=("$(ms "$t0" "$t1")")
    [ "$out" = "$expect" ] || { echo "bench: VM PageRank differs" >&2; exit 1; }
    vmw+=("$(awk '/workload start/ { s = $4 } /workload exit/ { e = $4 } END { printf "%d", e - s }' "$work/timings")")
done
mb=$(printf '%s\n' "${bare[@]}" | median)
mc=$(printf '%s\n' "${cont[@]}" | median)
mv=$(printf '%s\n' "${vm[@]}" | median)
mw=$(printf '%s\n' "${vmw[@]}" | median)
echo "  bare metal : median $mb ms  (${bare[*]})"
echo "  container  : median $mc ms  (${cont[*]})"
echo "  VM         : median $mv ms  (${vm[*]}; start to exit, booting the guest included)"
echo "  VM workload: median $mw ms  (${vmw[*]}; workload start to exit, by the boot timer)"
awk -v b="$mb" -v c="$mc" -v v="$mv" -v w="$mw" 'BEGIN { printf "  ratios to bare metal: container %.2fx, VM %.2fx (workload alone %.2fx)\n", c / b, v / b, w / b }'
echo "  checksum, identical in all three: $expect"
