#!/bin/bash
# Benchmark (not a test): TCP throughput and round-trip latency, in one run, from the host to
# a server (netecho, tests/workloads) on the host's loopback, in a container over the bridge
# (veth) and in a VM over the bridge (tap + isola-vmm's virtio-net), with the ratios — the
# issue's target is VM/container >= 0.5 inside the emulated test host — and, as the VM's peer,
# the same guest booted by QEMU's microvm with QEMU's virtio-net on a tap of the same bridge,
# in QEMU's user space and with vhost-net.
# The VM rows need a KVM that boots unmodified guests: run it inside the test host with
# tests/bench/network.
# Re-executes itself in a network namespace of its own: every bridge, rule and link it makes
# lives and dies there.
#
# usage: tests/bench/network_throughput.sh [SECONDS]   (as root, after a build)
set -euo pipefail
if [ "${ISOLA_BENCH_NETNS:-}" != 1 ]; then
    exec env ISOLA_BENCH_NETNS=1 unshare -n bash "$0" "$@"
fi
secs=${1:-3}
repo=$(cd "$(dirname "$0")/../.." && pwd)
isola=${ISOLA_BIN:-$repo/target/release/isola}
netecho=$repo/target/x86_64-unknown-linux-gnu/release/netecho
export ISOLA_ROOT=$(mktemp -d /tmp/isola-bench-net.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; "$isola" cleanup >/dev/null 2>&1 || true; rm -rf "$ISOLA_ROOT"' EXIT
ip link set lo up
"$repo/scripts/make-sample-image" "$isola" >/dev/null

# The address of the only workload on the default network, once it has one.
leased() {
    local i=0
    until ls "$ISOLA_ROOT/run/net/leases/bridge" 2>/dev/null | grep -q .; do
        i=$((i + 1)); [ $i -lt 1200 ] || { echo "bench: no workload got an address" >&2; exit 1; }; sleep 0.1
    done
    ls "$ISOLA_ROOT/run/net/leases/bridge" | head -1
}
# `measure NAME ADDR`: once the server answers, bulk throughput and 1-byte round trips.
declare -A mbs us
measure() {
    local i=0
    until "$netecho" ask tcp "$2" ping >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -lt 300 ] || { echo "bench: $1 never answered" >&2; exit 1; }; sleep 0.5
    done
    mbs[$1]=$("$netecho" stream "$2" "$secs" | awk '{print $2}')
    us[$1]=$("$netecho" rr "$2" "$secs" | awk '{print $5}')
}
serve='trap "exit 0" TERM; netecho serve tcp 7000 & wait'

"$netecho" serve tcp 7000 & host=$!
measure loopback 127.0.0.1:7000
kill $host

"$isola" run --rm --network bridge sample sh -c "$serve" & ct=$!
measure container "$(leased):7000"
kill $ct; wait $ct || true

levels=(loopback container)
if "$isola" doctor --json | grep -q '"vm": true'; then
    work=$(mktemp -d)
    # The initramfs isola boots is kept, for QEMU to boot the very same guest below.
    ISOLA_DEBUG_INITRAMFS="$work/initrd.cpio" "$isola" run --rm --network bridge --isolation vm \
        sample sh -c "$serve" & vm=$!
    addr=$(leased)
    measure vm "$addr:7000"
    kill $vm; wait $vm || true
    levels+=(vm)
    # The peers: QEMU's microvm with its own virtio-net device on a tap of the same bridge,
    # booting the same kernel, initramfs (so the same address) and root disk; once with the
    # device in QEMU's user space (as isola's), once with vhost-net (the data path in the
    # host kernel), where the test host has /dev/vhost-net.
    if command -v qemu-system-x86_64 >/dev/null; then
        # isola's MAC for the address (docker's), which the host's neighbour table has.
        mac=$(printf '02:42:%02x:%02x:%02x:%02x' ${addr//./ })
        ip tuntap add dev tapqemu mode tap vnet_hdr
        ip link set tapqemu master isola0 up
        qemu_vm() {
            exec timeout 600 qemu-system-x86_64 -M microvm,acpi=off -enable-kvm -cpu host -m 256 -smp 1 \
                -nodefaults -no-user-config -nographic -no-reboot -L /usr/share/qemu \
                -bios /usr/share/qemu/qboot.rom -kernel "$repo/target/guest/vmlinux" \
                -initrd "$work/initrd.cpio" \
                -append "console=ttyS0 reboot=t panic=-1 nomodule 8250.nr_uarts=1 rdinit=/init quiet" \
                -serial null \
                -drive "id=root,file=$(ls "$ISOLA_ROOT"/vm/*.ext4),format=raw,if=none,readonly=on" \
                -device virtio-blk-device,drive=root \
                -device virtio-serial-device -chardev "file,id=ch,path=$work/channel-$1" \
                -device virtconsole,chardev=ch \
                -netdev "tap,id=n0,ifname=tapqemu,script=no,downscript=no,vhost=$1" \
                -device "virtio-net-device,netdev=n0,mac=$mac" </dev/null >/dev/null 2>&1
        }
        qemu_vm off & qemu=$!
        measure qemu "$addr:7000"
        kill $qemu; wait $qemu || true
        levels+=(qemu)
        if [ -c /dev/vhost-net ]; then
            qemu_vm on & qemu=$!
            measure qemu+vhost "$addr:7000"
            kill $qemu; wait $qemu || true
            levels+=(qemu+vhost)
        else
            echo "NOT MEASURED HERE: QEMU with vhost-net (no /dev/vhost-net)"
        fi
    fi
    rm -rf "$work"
else
    echo "NOT MEASURED HERE: VM (this host's KVM cannot boot an unmodified guest; run tests/bench/network)"
fi

echo "TCP from the host, ${secs} s each (netecho: bulk through an echo server, 1-byte round trips):"
printf '  %-10s %12s %14s\n' "server" "MB/s" "round trip us"
for l in "${levels[@]}"; do printf '  %-10s %12s %14s\n' "$l" "${mbs[$l]}" "${us[$l]}"; done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "  container/loopback: throughput $(ratio "${mbs[container]}" "${mbs[loopback]}")x, latency $(ratio "${us[container]}" "${us[loopback]}")x"
if [ -n "${mbs[vm]:-}" ]; then
    echo "  vm/container:       throughput $(ratio "${mbs[vm]}" "${mbs[container]}")x (target >= 0.5x), latency $(ratio "${us[vm]}" "${us[container]}")x"
fi
if [ -n "${mbs[qemu]:-}" ]; then
    echo "  vm/qemu:            throughput $(ratio "${mbs[vm]}" "${mbs[qemu]}")x, latency $(ratio "${us[vm]}" "${us[qemu]}")x  (the same guest under QEMU's virtio-net, vhost off)"
fi
if [ -n "${mbs[qemu+vhost]:-}" ]; then
    echo "  vm/qemu+vhost:      throughput $(ratio "${mbs[vm]}" "${mbs[qemu+vhost]}")x, latency $(ratio "${us[vm]}" "${us[qemu+vhost]}")x  (QEMU's data path in the host kernel)"
fi
exit 0
