#!/usr/bin/env python3
"""Benchmark (not a test): pull + unpack of one multi-layer image from a local registry,
isola against the usual pair of tools, in one run.

  isola:  isola pull IMAGE          (fetch, verify, unpack into the rootfs isola runs from)
  peer:   skopeo copy docker://IMAGE oci:DIR:TAG  then  umoci unpack --image DIR:TAG BUNDLE

The image is built here: five gzip layers, ~60 MiB compressed — the sample's busybox root,
this machine's Python standard library (thousands of small files), and three layers of
incompressible files (as binaries are). Debian's docker-registry serves it on 127.0.0.1.
Each run starts from empty stores; runs alternate; medians, the ratio and peak RSS are printed.

usage: tests/bench/pull.py [RUNS]   (as root; needs docker-registry, skopeo, umoci, the sample)
"""
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
ISOLA = os.environ.get("ISOLA_BIN") or (os.path.abspath("target/release/isola") if os.path.exists(
    "target/release/isola") else shutil.which("isola"))


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def layer_from(add):
    """A gzip tar layer: add(tar) fills it. Returns (compressed bytes, diff_id hex)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add(tar)
    data = raw.getvalue()
    return gzip.compress(data, compresslevel=6, mtime=0), sha256(data)


def random_files(seed, count, size):
    def add(tar):
        rng = random.Random(seed)
        d = tarfile.TarInfo(f"opt/blob{seed}")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(d)
        for i in range(count):
            t = tarfile.TarInfo(f"opt/blob{seed}/file{i}.bin")
            t.size, t.mode = size, 0o644
            tar.addfile(t, io.BytesIO(rng.randbytes(size)))
    return add


def python_stdlib(tar):
    src = f"/usr/lib/python3.{sys.version_info.minor}"
    tar.add(src, arcname=src.lstrip("/"), filter=lambda t: None if "__pycache__" in t.name else t)


def build_layout(dir, sample_layout):
    blobs = os.path.join(dir, "blobs", "sha256")
    os.makedirs(blobs)

    def put(b):
        h = sha256(b)
        with open(os.path.join(blobs, h), "wb") as f:
            f.write(b)
        return h

    # The sample's own layer (a gzip tar already) comes first.
    index = json.load(open(os.path.join(sample_layout, "index.json")))
    sample = next(m for m in index["manifests"]
                  if m["annotations"]["org.opencontainers.image.ref.name"] == "sample:latest")
    sblobs = os.path.join(sample_layout, "blobs", "sha256")
    smanifest = json.load(open(os.path.join(sblobs, sample["digest"][7:])))
    sconfig = json.load(open(os.path.join(sblobs, smanifest["config"]["digest"][7:])))
    layers = []
    for l, diff in zip(smanifest["layers"], sconfig["rootfs"]["diff_ids"]):
        b = open(os.path.join(sblobs, l["digest"][7:]), "rb").read()
        layers.append((put(b), len(b), diff[7:]))
    for add in (python_stdlib, random_files(1, 16, 1 << 20), random_files(2, 8, 2 << 20),
                random_files(3, 4, 4 << 20)):
        b, diff = layer_from(add)
        layers.append((put(b), len(b), diff))
    config = dict(sconfig)
    config["rootfs"] = {"type": "layers", "diff_ids": ["sha256:" + d for _, _, d in layers]}
    config.pop("history", None)
    cb = json.dumps(config).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + put(cb), "size": len(cb)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": "sha256:" + h, "size": n} for h, n, _ in layers],
    }
    mb = json.dumps(manifest).encode()
    json.dump({"schemaVersion": 2, "manifests": [{
        "mediaType": manifest["mediaType"], "digest": "sha256:" + put(mb), "size": len(mb),
        "annotations": {"org.opencontainers.image.ref.name": "big"}}]},
        open(os.path.join(dir, "index.json"), "w"))
    json.dump({"imageLayoutVersion": "1.0.0"}, open(os.path.join(dir, "oci-layout"), "w"))
    return sum(n for _, n, _ in layers), len(layers)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def measured(argv, env=None):
    """(wall seconds, peak RSS KiB) of one command, by GNU time; fails loudly."""
    start = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited {p.returncode}: {p.stderr.decode()}")
    return wall, int(p.stderr.decode().strip().splitlines()[-1])


def main():
    if os.geteuid() != 0:
        sys.exit("run as root (umoci unpack and isola's unpack keep owners)")
    work = tempfile.mkdtemp(prefix="isola-bench-pull-")
    registry = None
    try:
        sample_root = os.path.join(work, "sample-root")
        subprocess.run(["scripts/make-sample-image", ISOLA], check=True, stdout=subprocess.DEVNULL,
                       env=dict(os.environ, ISOLA_ROOT=sample_root))
        layout = os.path.join(work, "layout")
        size, nlayers = build_layout(layout, os.path.join(sample_root, "images"))
        port = free_port()
        config = os.path.join(work, "registry.yml")
        with open(config, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                    f"    rootdirectory: {work}/storage\nhttp:\n  addr: 127.0.0.1:{port}\n")
        registry = subprocess.Popen(["docker-registry", "serve", config],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        name = f"127.0.0.1:{port}/bench/big:1"
        subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:big",
                        f"docker://{name}"], check=True)
        print(flush=True)
        print(f"image: {nlayers} gzip layers, {size / 2**20:.1f} MiB compressed, "
              f"served by docker-registry at {name}")
        isola, peer = [], []
        for i in range(RUNS):
            root = os.path.join(work, f"isola-{i}")
            w, rss = measured([ISOLA, "pull", "-q", name], env=dict(os.environ, ISOLA_ROOT=root))
            isola.append((w, rss))
            shutil.rmtree(root)
            oci, bundle = os.path.join(work, f"oci-{i}"), os.path.join(work, f"bundle-{i}")
            w1, r1 = measured(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                               f"docker://{name}", f"oci:{oci}:big"])
            w2, r2 = measured(["umoci", "unpack", "--image", f"{oci}:big", bundle])
            peer.append((w1 + w2, max(r1, r2), w1, w2))
            shutil.rmtree(oci)
            shutil.rmtree(bundle)
            print(f"  run {i + 1}: isola {isola[-1][0]:.2f} s, skopeo+umoci {w1 + w2:.2f} s "
                  f"({w1:.2f} + {w2:.2f})")
        mi = statistics.median(w for w, _ in isola)
        mp = statistics.median(w for w, *_ in peer)
        print(f"pull + unpack, median of {RUNS}: isola {mi:.2f} s, skopeo copy + umoci unpack "
              f"{mp:.2f} s (skopeo {statistics.median(p[2] for p in peer):.2f} s, "
              f"umoci {statistics.median(p[3] for p in peer):.2f} s)")
        print(f"ratio isola/peer: {mi / mp:.2f}x  (isola {mp / mi:.1f}x faster; target 1.5x)")
        print(f"peak RSS: isola {max(r for _, r in isola) / 1024:.1f} MiB, "
              f"skopeo/umoci {max(p[1] for p in peer) / 1024:.1f} MiB")
    finally:
        if registry:
            registry.kill()
            registry.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
