//! Whether this host can run a VM at all, checked before anything is made: KVM that runs
//! unmodified guests (isola doctor's probe, its verdict remembered per boot and /dev/kvm), and
//! the guest artifacts.

use crate::paths::Paths;
use crate::Exit;
use anyhow::{bail, Result};

/// How to boot this host's VMs: the guest artifacts and isola's run directory.
pub fn vm_config(paths: &Paths) -> isola_sandbox::vm::VmConfig {
    isola_sandbox::vm::VmConfig::new(paths.guest(), paths.run.clone())
}

/// Fails with 125 and the reason when VM isolation cannot run here.
pub fn preflight(paths: &Paths) -> Result<()> {
    // The probe VM costs a few ms on hardware (60 ms in the emulated test host); a usable
    // verdict holds until the host reboots or /dev/kvm is made anew (kvm reloaded).
    let remembered = paths.run.join("kvm-usable");
    let key = kvm_key();
    if key.is_none() || std::fs::read_to_string(&remembered).ok() != key {
        let (kvm, verdict) = crate::commands::doctor::kvm_check();
        if !verdict.can_run_vms() {
            bail!(Exit(
                125,
                format!(
                    "--isolation vm: this host cannot run VMs: {} (see `isola doctor`)",
                    kvm.detail
                )
            ));
        }
        if let Some(key) = key {
            let tmp = paths
                .run
                .join(format!(".kvm-usable.{}", std::process::id()));
            let _ = std::fs::create_dir_all(&paths.run)
                .and_then(|()| std::fs::write(&tmp, key))
                .and_then(|()| std::fs::rename(&tmp, &remembered));
            let _ = std::fs::remove_file(&tmp);
        }
    }
    let config = vm_config(paths);
    for (what, p) in [
        ("guest kernel", config.kernel()),
        ("guest init", config.init()),
    ] {
        if !p.is_file() {
            bail!(Exit(
                125,
                format!(
                    "--isolation vm: the {what} {} is missing (see `isola doctor`)",
                    p.display()
                )
            ));
        }
    }
    Ok(())
}

/// This boot and this /dev/kvm: what a remembered KVM verdict is valid for.
fn kvm_key() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let dev = std::fs::metadata("/dev/kvm").ok()?;
    Some(format!(
        "{} {} {}.{}\n",
        boot.trim(),
        dev.rdev(),
        dev.ctime(),
        dev.ctime_nsec()
    ))
}
