//! PID 1 inside isola's microVM. The initramfs isola builds holds this binary as /init and the
//! bundle's config.json as /isola/config.json; the image's root filesystem is a read-only disk
//! (/dev/vda). Init mounts the kernel filesystems and the disk under a writable overlay,
//! switches root to it, applies the process spec (args, env, cwd, user, groups, hostname,
//! rlimits), runs the workload as PID 1 of its own PID namespace, relays its stdin, stdout,
//! stderr and signals over the host channel (/dev/hvc0), reports its exit status and resets
//! the machine — which ends the VM.
//!
//! Each phase is marked on the boot-timer port (0x80) so the VMM can time it.

mod cgroup;
mod channel;
mod exec_session;
mod mounts;
mod network;
mod probe;
mod process;
mod processes;
mod relay;
mod setup;
mod stdio;
mod tiny_init;

use isola_guest_contract::boot::{self, Phase};
use isola_guest_contract::GuestError;

fn main() {
    // `/dev/init -- CMD...`: the workload's own tiny init (`--init`), not the VM's.
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--") => tiny_init::main(&args[2..]),
        // `isola compare`'s probe: what a process sees from where it runs.
        Some("--probe") => probe::main(),
        _ => {}
    }
    setup::mark(Phase::InitStart);
    if let Err(e) = setup::mount_kernel_filesystems() {
        setup::console(&format!("isola-guest-init: {e}\n"));
        setup::power_off();
    }
    let mut channel = match channel::Channel::open() {
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
            channel.error(e);
            125
        }
    };
    channel.exit(code);
    setup::power_off()
}

fn run(channel: &mut channel::Channel) -> Result<i32, GuestError> {
    let plan = setup::read_plan()?;
    // Read from the initramfs before the image's root filesystem replaces it.
    let seccomp = process::seccomp_filter()?;
    let stdin = setup::kernel_flag(boot::STDIN_FLAG);
    let wait = setup::kernel_flag(boot::WAIT_FOR_START);
    let etc_files = network::set_up()?;
    let mounts = mounts::read()?;
    setup::enter_rootfs(&plan, etc_files.as_ref(), &mounts)?;
    if wait {
        channel.wait_for_start();
    }
    let code = process::run_workload(&plan, seccomp.as_ref(), stdin, channel)?;
    if cgroup::oom_killed() {
        channel.oom_killed();
    }
    Ok(code)
}
