#!/bin/bash
# Benchmark (not a test): how long `exec` takes — a process started beside a running workload,
# run to its end (`true`), its status back — with runc's `exec` into a runc container of the
# same bundle as the peer, and the VM level (a process started by guest init in the
# workload's namespaces, over the VM's channel) beside the container level, in one run.
# Prints the mean per exec and the ratios. The VM row needs a KVM that boots unmodified
# guests: run it inside the test host with tests/bench/exec. Runs in a network namespace of
# its own, `--network none`.
#
# usage: tests/bench/exec_latency.sh [N]   (as root, after a build)
set -euo pipefail
if [ "${ISOLA_BENCH_NETNS:-}" != 1 ]; then
    exec env ISOLA_BENCH_NETNS=1 unshare -n bash "$0" "$@"
fi
n=${1:-50}
repo=$(cd "$(dirname "$0")/../.." && pwd)
isola=${ISOLA_BIN:-$repo/target/release/isola}
export ISOLA_ROOT=$(mktemp -d /tmp/isola-bench-exec.XXXXXX)
peer=isola-bench-exec-$$
cleanup() {
    runc kill "$peer" KILL >/dev/null 2>&1 || true
    runc delete -f "$peer" >/dev/null 2>&1 || true
    "$isola" rm -f $("$isola" ps -aq) >/dev/null 2>&1 || true
    "$isola" cleanup >/dev/null 2>&1 || true
    rm -rf "$ISOLA_ROOT"
}
trap cleanup EXIT
"$repo/scripts/make-sample-image" "$isola" >/dev/null

# Mean milliseconds of N runs of "$@".
mean_ms() {
    local t0 t1
    "$@" >/dev/null # warm
    t0=$EPOCHREALTIME # bash's own clock: the test host's date has no %N
    for _ in $(seq 1 "$n"); do "$@" >/dev/null; done
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" -v n="$n" 'BEGIN { printf "%.2f", (b - a) / n * 1000 }'
}

declare -A ms
"$isola" run -d --network none --name ctr sample sleep 600 >/dev/null
ms[container]=$(mean_ms "$isola" exec ctr true)
if command -v runc >/dev/null; then
    "$isola" bundle sample "$ISOLA_ROOT/bundle" sleep 600 >/dev/null
    runc run -d --bundle "$ISOLA_ROOT/bundle" "$peer" </dev/null >/dev/null 2>&1
    ms[runc]=$(mean_ms runc exec "$peer" true)
else
    echo "NOT MEASURED HERE: runc (not installed)"
fi
if "$isola" doctor --json | grep -q '"vm": true'; then
    "$isola" run -d --network none --isolation vm --name vm sample sleep 600 >/dev/null
    until "$isola" exec vm true >/dev/null 2>&1; do sleep 0.2; done
    ms[vm]=$(mean_ms "$isola" exec vm true)
else
    echo "NOT MEASURED HERE: VM (this host's KVM cannot boot an unmodified guest; run tests/bench/exec)"
fi
echo "exec of \`true\` beside a running \`sleep\`, mean of $n:"
for l in runc container vm; do
    [ -n "${ms[$l]:-}" ] && printf '  %-10s %10s ms\n' "$l" "${ms[$l]}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
[ -n "${ms[runc]:-}" ] && echo "  isola container / runc: $(ratio "${ms[container]}" "${ms[runc]}")x the time"
[ -n "${ms[vm]:-}" ] && echo "  vm / container: $(ratio "${ms[vm]}" "${ms[container]}")x the time"
exit 0
