# Shared by scripts/setup and scripts/test: Debian packages and the build.
# shellcheck shell=bash

# Every Debian package isola's set-up, demo, tests and benchmarks use.
ISOLA_PACKAGES=(runc podman conmon containerd skopeo umoci docker-registry busybox-static e2fsprogs util-linux procps iproute2 nftables time python3 qemu-system-x86 qemu-system-common cpio openssl)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# What only the test suite uses: Debian's Chromium, headless, screenshots the compare page.
TEST_PACKAGES=(chromium)

# Installs what is missing of the packages named (ISOLA_PACKAGES when none are).
install_packages() {
    local missing=() wanted=("$@")
    [ ${#wanted[@]} -gt 0 ] || wanted=("${ISOLA_PACKAGES[@]}")
    for p in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

require_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "$0: run me as root (isola creates namespaces, cgroups and mounts)" >&2
        exit 1
    fi
}

# Release build of isola and the static workloads baked into the sample image.
build_all() {
    log "building isola (release)"
    cargo build --release --locked -p isola
    log "building the static workloads and the guest init"
    RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build --release --locked -p isola-workloads -p isola-guest-init --target x86_64-unknown-linux-gnu
    log "building the guest kernel (cached after the first build)"
    local kdir
    kdir=$(guest/kernel/build)
    mkdir -p target/guest
    cp "$kdir/vmlinux" target/guest/vmlinux
    cp "$kdir/bzImage" target/guest/bzImage
    cp target/x86_64-unknown-linux-gnu/release/isola-guest-init target/guest/init
}
