#!/usr/bin/env python3
"""Benchmark (not a test): what joining a bridge network costs a container's start.

Runs `isola run --rm sample true` with `--network none`, `--network bridge` (the default
network) and on a user-defined network, alternating, N runs each, and prints medians and the
difference to `none` (issue 12's target: at most 5 ms). It re-executes itself inside a network
namespace of its own (`unshare -n`), so every bridge and veth it makes lives and dies there,
never in the machine's own namespace.

usage: tests/bench/network_start.py [RUNS]   (as root; needs the sample image)
"""
import os
import shutil
import statistics
import subprocess
import sys

from container_start import timed  # one copy: wall time of a command, failing loudly

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 30
ISOLA = os.path.abspath(os.environ.get("ISOLA_BIN") or shutil.which("isola") or "target/release/isola")


def main():
    if os.geteuid() != 0:
        sys.exit("run as root")
    if os.environ.get("ISOLA_BENCH_NETNS") != "1":
        env = dict(os.environ, ISOLA_BENCH_NETNS="1", ISOLA_BIN=ISOLA)
        sys.exit(subprocess.run(["unshare", "-n", sys.executable, *sys.argv], env=env).returncode)
    net = f"bench{os.getpid()}"
    subprocess.run([ISOLA, "network", "create", net], check=True, stdout=subprocess.DEVNULL)
    try:
        cases = {"none": "none", "bridge": "bridge", "user network": net}
        # One of each first: the bridges are made on first use, not per run.
        for n in cases.values():
            timed([ISOLA, "run", "--rm", "--network", n, "sample", "true"])
        times = {k: [] for k in cases}
        for _ in range(RUNS):
            for k, n in cases.items():
                times[k].append(timed([ISOLA, "run", "--rm", "--network", n, "sample", "true"]))
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        print(f"isola run --rm sample true, {RUNS} runs each, alternating (medians), own netns:")
        for k, m in med.items():
            extra = "" if k == "none" else f"   (+{m - med['none']:.2f} ms over none; target <= 5 ms)"
            print(f"  --network {k:13} {m:7.2f} ms{extra}")
    finally:
        subprocess.run([ISOLA, "network", "rm", net], stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
