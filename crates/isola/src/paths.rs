//! Where isola keeps things: images and container bundles under the data root
//! (/var/lib/isola), running-container state under the run root (/run/isola). `ISOLA_ROOT`
//! puts everything under one directory instead.

use std::path::PathBuf;

pub struct Paths {
    pub data: PathBuf,
    pub run: PathBuf,
}

impl Paths {
    /// Makes the directories that hold image contents, container roots and state private to
    /// root (0700), and narrows them if they exist wider: an image's setuid binaries and device
    /// nodes are then never reachable by a host user (CVE-2021-41091's class). Failures are
    /// left to the command that needs the directory to report.
    pub fn secure(&self) {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        for dir in [
            self.images(),
            self.rootfs_cache(),
            self.bundles(),
            self.volumes(),
            self.vm_images(),
            self.locks(),
            self.run.clone(),
        ] {
            let _ = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir);
            if let Ok(meta) = std::fs::metadata(&dir) {
                if meta.permissions().mode() & 0o777 != 0o700 {
                    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
                }
            }
        }
    }

    pub fn from_env() -> Paths {
        match std::env::var_os("ISOLA_ROOT").filter(|v| !v.is_empty()) {
            Some(root) => {
                let root = PathBuf::from(root);
                Paths {
                    run: root.join("run"),
                    data: root,
                }
            }
            None => Paths {
                data: PathBuf::from("/var/lib/isola"),
                run: PathBuf::from("/run/isola"),
            },
        }
    }

    /// The OCI image layout.
    pub fn images(&self) -> PathBuf {
        self.data.join("images")
    }

    /// Unpacked image root filesystems, by chain ID.
    pub fn rootfs_cache(&self) -> PathBuf {
        self.data.join("rootfs")
    }

    /// The unpacked-rootfs cache, with its lock files.
    pub fn rootfs(&self) -> isola_oci::rootfs::RootfsCache {
        isola_oci::rootfs::RootfsCache::new(self.rootfs_cache(), self.locks())
    }

    /// Lock files: one per rootfs while it is unpacked or deleted.
    pub fn locks(&self) -> PathBuf {
        self.data.join("locks")
    }

    /// Named volumes, one directory each (see `volumes::store`).
    pub fn volumes(&self) -> PathBuf {
        self.data.join("volumes")
    }

    /// One bundle directory per container.
    pub fn bundles(&self) -> PathBuf {
        self.data.join("containers")
    }

    /// The VM's guest kernel (`vmlinux`) and init: `$ISOLA_GUEST_DIR`, else `guest/` beside
    /// the directory holding the isola binary (a build tree's `target/guest`), else
    /// /usr/local/lib/isola/guest (where scripts/setup installs them).
    pub fn guest(&self) -> PathBuf {
        if let Some(d) = std::env::var_os("ISOLA_GUEST_DIR").filter(|v| !v.is_empty()) {
            return PathBuf::from(d);
        }
        if let Some(beside) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().and_then(|p| p.parent()).map(|p| p.join("guest")))
        {
            if beside.join("vmlinux").is_file() {
                return beside;
            }
        }
        PathBuf::from("/usr/local/lib/isola/guest")
    }

    /// Per-image initramfs archives of unpacked root filesystems, for VM isolation.
    pub fn vm_images(&self) -> PathBuf {
        self.data.join("vm")
    }

    /// User-defined networks, one JSON file each.
    pub fn networks(&self) -> PathBuf {
        self.data.join("networks")
    }

    /// The networks' run-time state: address leases, published ports, the firewall's lock
    /// (gone with a reboot, as the bridges and rules are).
    pub fn net_run(&self) -> PathBuf {
        self.run.join("net")
    }

    /// The networks and their run-time state.
    pub fn network_store(&self) -> isola_net::NetworkStore {
        isola_net::NetworkStore::new(self.networks(), self.net_run())
    }

    /// One state directory per running container.
    pub fn states(&self) -> PathBuf {
        self.run.join("containers")
    }
}
