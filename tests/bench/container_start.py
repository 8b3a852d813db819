#!/usr/bin/env python3
"""Benchmark (not a test): start-to-exit of `true` in a container, isola against runc.

Runs `isola run --rm --isolation container sample true` and `runc run` of the bundle isola
writes for the same image and command (`isola bundle sample DIR true`), alternating, N runs
each, in one process, and prints medians, the ratio isola/runc and isola's peak RSS.
isola's figure includes everything `isola run` does per run (image lookup, overlay rootfs,
config.json, cgroups, namespaces, teardown); runc's starts from a ready bundle. Both without a
network (`--network none`: the bundle's own loopback-only namespace, as runc's); what the
default bridge network adds is tests/bench/network_start.py's.

usage: tests/bench/container_start.py [RUNS]   (as root; needs the sample image and runc)
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 30
ISOLA = os.environ.get("ISOLA_BIN") or shutil.which("isola") or "target/release/isola"


def timed(argv):
    """Wall time (s) of one command; fails loudly on a non-zero exit."""
    start = time.perf_counter()
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode()}")
    return wall


def peak_rss_kib(argv):
    """Peak RSS of a command, measured by GNU time (a small C parent: a child forked from
    Python would carry Python's own RSS into the figure)."""
    out = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
    return int(out.stderr.decode().strip().splitlines()[-1])


def main():
    if os.geteuid() != 0:
        sys.exit("run as root")
    runc = shutil.which("runc")
    if not runc:
        sys.exit("runc is not installed (scripts/setup installs it)")
    work = tempfile.mkdtemp(prefix="isola-bench-")
    bundle = os.path.join(work, "bundle")
    try:
        subprocess.run([ISOLA, "bundle", "sample", bundle, "true"], check=True, stdout=subprocess.DEVNULL)
        # Warm both (page cache, the unpacked rootfs cache) before measuring.
        for i in range(3):
            timed([ISOLA, "run", "--rm", "--network", "none", "sample", "true"])
            timed([runc, "run", "-b", bundle, f"isola-bench-warm-{os.getpid()}-{i}"])
        isola_t, runc_t = [], []
        for i in range(RUNS):
            isola_t.append(timed([ISOLA, "run", "--rm", "--network", "none", "--isolation", "container", "sample", "true"]))
            runc_t.append(timed([runc, "run", "-b", bundle, f"isola-bench-{os.getpid()}-{i}"]))
        rss = [peak_rss_kib([ISOLA, "run", "--rm", "--network", "none", "sample", "true"]) for _ in range(5)]
        runc_rss = [peak_rss_kib([runc, "run", "-b", bundle, f"isola-bench-rss-{os.getpid()}-{i}"])
                    for i in range(5)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mi, mr = statistics.median(isola_t), statistics.median(runc_t)
    print(f"container start-to-exit of `true`, {RUNS} runs each, alternating")
    print(f"  isola run --isolation container sample true : median {mi * 1000:7.2f} ms"
          f"  (min {min(isola_t) * 1000:.2f}, max {max(isola_t) * 1000:.2f})")
    print(f"  runc run (same image, same command)          : median {mr * 1000:7.2f} ms"
          f"  (min {min(runc_t) * 1000:.2f}, max {max(runc_t) * 1000:.2f})")
    print(f"  ratio isola/runc: {mi / mr:.2f}x   (target <= 0.50x)")
    print(f"  peak RSS: isola {max(rss) / 1024:.1f} MiB, runc {max(runc_rss) / 1024:.1f} MiB"
          " (max of 5 runs, GNU time)")


if __name__ == "__main__":
    main()
