//! PID 1 inside isola's microVM. The initramfs isola builds holds this binary as /init, the
//! bundle's config.json as /isola/config.json and the image's root filesystem as
//! /isola/rootfs. Init mounts the kernel filesystems, switches root to the image, applies the
//! process spec (args, env, cwd, user, groups, hostname, rlimits), runs the workload with its
//! stdout on ttyS1 and stderr on ttyS2, reports `exit N` on ttyS3 and resets the machine —
//! which ends the VM.
//!
//! Each phase is marked on the boot-timer port (0x80) so the VMM can time it.

mod process;
mod setup;

/// Boot-timer phases (the VMM prints them with --timings).
pub const MARK_INIT_START: u8 = 2;
pub const MARK_WORKLOAD_START: u8 = 3;
pub const MARK_WORKLOAD_EXIT: u8 = 4;

fn main() {
    setup::mark(MARK_INIT_START);
    if let Err(e) = setup::mount_kernel_filesystems() {
        setup::console(&format!("isola-guest-init: {e}\n"));
        setup::power_off();
    }
    let mut channel = match setup::Channel::open() {
        Ok(c) => c,
        Err(e) => {
            setup::console(&format!("isola-guest-init: no host channel: {e}\n"));
            setup::power_off();
        }
    };
    let code = match run(&mut channel) {
        Ok(code) => code,
        Err(e) => {
            setup::console(&format!("isola-guest-init: {e}\n"));
            channel.error(&e);
            125
        }
    };
    channel.exit(code);
    setup::power_off()
}

fn run(channel: &mut setup::Channel) -> Result<i32, String> {
    let spec = setup::read_spec()?;
    setup::enter_rootfs(&spec)?;
    process::run_workload(&spec, channel)
}
