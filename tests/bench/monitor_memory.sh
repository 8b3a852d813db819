#!/bin/bash
# Benchmark (not a test): what a detached workload's monitor costs. Starts N detached
# containers (`isola run -d ... sleep`) and reads, for each, its monitor (`isola run` itself)
# and log writer from /proc: RSS (what top shows), its private part, and PSS (shared pages —
# isola's own code, mostly — divided among the processes that map them). The issue's target
# is <= 2 MiB per detached workload. Runs in a network namespace of its own, `--network none`.
#
# usage: tests/bench/monitor_memory.sh [N]   (as root, after a build)
set -euo pipefail
if [ "${ISOLA_BENCH_NETNS:-}" != 1 ]; then
    exec env ISOLA_BENCH_NETNS=1 unshare -n bash "$0" "$@"
fi
n=${1:-10}
repo=$(cd "$(dirname "$0")/../.." && pwd)
isola=${ISOLA_BIN:-$repo/target/release/isola}
export ISOLA_ROOT=$(mktemp -d /tmp/isola-bench-mon.XXXXXX)
trap '"$isola" rm -f $("$isola" ps -aq) >/dev/null 2>&1 || true; "$isola" cleanup >/dev/null 2>&1 || true; rm -rf "$ISOLA_ROOT"' EXIT
"$repo/scripts/make-sample-image" "$isola" >/dev/null
for i in $(seq 1 "$n"); do "$isola" run -d --network none --name "m$i" sample sleep 600 >/dev/null; done
sleep 1
field() { awk -v k="$2:" '$1 == k { s += $2 } END { print s + 0 }' "$1"; }
rss=0 pss=0 private=0 procs=0
for i in $(seq 1 "$n"); do
    mon=$("$isola" inspect "m$i" | awk -F': ' '/"MonitorPid"/ { gsub(/[^0-9]/, "", $2); print $2 }')
    for p in "$mon" $(cat /proc/"$mon"/task/*/children); do
        [ "$(cat /proc/"$p"/comm)" = isola ] || continue   # the monitor and its log writer
        r=/proc/$p/smaps_rollup
        rss=$((rss + $(field "$r" Rss)))
        pss=$((pss + $(field "$r" Pss)))
        private=$((private + $(field "$r" Private_Clean) + $(field "$r" Private_Dirty)))
        procs=$((procs + 1))
    done
done
per() { awk -v t="$1" -v n="$n" 'BEGIN { printf "%.2f", t / n / 1024 }'; }
echo "$n detached containers, $procs isola processes (a monitor and a log writer each):"
echo "  per workload: RSS $(per $rss) MiB, private $(per $private) MiB, PSS $(per $pss) MiB (target <= 2 MiB)"
