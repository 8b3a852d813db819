#!/usr/bin/env python3
"""Benchmark (not a test): `podman run --rm sample true` with isola as the OCI runtime against
runc, alternating, N runs each, from one podman with its own storage (the sample image pulled
from isola's store, an OCI layout). Prints medians, the ratio isola/runc (target <= 0.7x) and
how much of each run is the runtime's own: a second round goes through a wrapper that logs the
wall time of every runtime call (create, start, state, delete, ...), and the rest of the run is
podman's and conmon's.

BENCH_RUNTIMES=isola-vm,isola compares the VM level with the container level instead (run it
where KVM boots unmodified guests: tests/bench/podman_vm runs it in the emulated test host).

usage: tests/bench/podman_start.py [RUNS]   (as root; needs podman, conmon, runc and the sample
       image in isola's store: scripts/setup makes it)
"""
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
ISOLA = os.path.abspath(os.environ.get("ISOLA_BIN") or shutil.which("isola") or "target/release/isola")
STORE = os.environ.get("ISOLA_ROOT", "/var/lib/isola")


def main():
    if os.geteuid() != 0:
        sys.exit("run as root")
    runc = shutil.which("runc")
    if not runc or not shutil.which("podman"):
        sys.exit("runc and podman are needed (scripts/test installs them)")
    first, second = os.environ.get("BENCH_RUNTIMES", "isola,runc").split(",")
    # Short: podman refuses a run root longer than 50 characters.
    work = tempfile.mkdtemp(prefix="ipb-", dir="/tmp")
    parent = f"/isola-bench-podman-{os.getpid()}"
    try:
        timings = os.path.join(work, "calls")
        wrappers = {}
        # isola-vm: isola called by that name (every bundle VM-isolated).
        link = os.path.join(work, "isola-vm")
        os.symlink(ISOLA, link)
        binaries = {"isola": ISOLA, "runc": runc, "isola-vm": link}
        for name in (first, second):
            binary = binaries[name]
            # Timed through a wrapper (second round only): wall time of each runtime call.
            path = os.path.join(work, f"timed-{name}")
            with open(path, "w") as f:
                f.write("#!/bin/sh\ns=$(date +%s%N)\n"
                        f"{binary} \"$@\"\nrc=$?\n"
                        f"echo {name} $(( $(date +%s%N) - s )) \"$*\" >> {timings}\nexit $rc\n")
            os.chmod(path, 0o755)
            wrappers[name] = path
        conf = os.path.join(work, "containers.conf")
        with open(conf, "w") as f:
            f.write('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
                    '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                    "[engine.runtimes]\n"
                    + "".join(f'{n} = ["{binaries[n]}"]\ntimed-{n} = ["{wrappers[n]}"]\n'
                              for n in (first, second)))
        env = dict(os.environ, CONTAINERS_CONF=conf)
        base = ["podman", "--root", f"{work}/root", "--runroot", f"{work}/run", "--tmpdir", f"{work}/tmp"]
        layout = os.path.join(work, "layout")
        shutil.copytree(os.path.join(STORE, "images"), layout, ignore=shutil.ignore_patterns("index.lock"))
        image = subprocess.run(base + ["pull", "-q", f"oci:{layout}:sample:latest"], env=env,
                               check=True, capture_output=True, text=True).stdout.strip()

        def run(runtime):
            argv = base + ["--runtime", runtime, "run", "--rm", "--network", "none",
                           "--cgroup-parent", parent, image, "true"]
            start = time.perf_counter()
            p = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True)
            wall = time.perf_counter() - start
            if p.returncode != 0:
                sys.exit(f"podman --runtime {runtime}: exit {p.returncode}: {p.stderr.decode()}")
            return wall

        for _ in range(3):
            run(first), run(second)
        t = {first: [], second: []}
        for _ in range(RUNS):
            for r in t:
                t[r].append(run(r))
        med = {r: statistics.median(v) for r, v in t.items()}
        print(f"podman run --rm sample true, {RUNS} runs each, alternating (medians):")
        for r in t:
            print(f"  {r:6} {med[r] * 1000:8.1f} ms")
        target = " (target <= 0.7x)" if (first, second) == ("isola", "runc") else ""
        print(f"  ratio {first}/{second}: {med[first] / med[second]:.2f}x{target}")

        share = {}
        verbs = ("create", "start", "state", "kill", "delete", "exec", "run", "features")
        for r in (first, second):
            own, total, per_verb = [], [], {}
            for _ in range(max(5, RUNS // 2)):
                if os.path.exists(timings):
                    os.remove(timings)
                total.append(run(f"timed-{r}"))
                calls = {}
                with open(timings) as f:
                    for line in f:
                        words = line.split()
                        verb = next((w for w in words[2:] if w in verbs), "other")
                        calls[verb] = calls.get(verb, 0) + int(words[1]) / 1e9
                own.append(sum(calls.values()))
                for verb, t in calls.items():
                    per_verb.setdefault(verb, []).append(t)
            share[r] = (statistics.median(own), statistics.median(total), per_verb)
        print("the runtime's own calls within a run (through a timing wrapper), medians:")
        for r, (own, total, per_verb) in share.items():
            each = ", ".join(f"{v} {statistics.median(t) * 1000:.1f}" for v, t in sorted(per_verb.items()))
            print(f"  {r:6} runtime {own * 1000:7.1f} ms of {total * 1000:7.1f} ms: "
                  f"podman and conmon {100 * (1 - own / total):.0f}%  ({each} ms)")
    finally:
        subprocess.run(["podman", "--root", f"{work}/root", "--runroot", f"{work}/run",
                        "rm", "-a", "-f"], capture_output=True)
        for m in reversed([l.split()[4] for l in open("/proc/self/mountinfo") if l.split()[4].startswith(work)]):
            subprocess.run(["umount", "-l", m], capture_output=True)
        for d in glob.glob(f"/sys/fs/cgroup/*{parent}") + glob.glob(f"/sys/fs/cgroup/*/{parent.lstrip('/')}"):
            for sub in sorted(glob.glob(f"{d}/*/"), reverse=True):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass
            try:
                os.rmdir(d)
            except OSError:
                pass
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
