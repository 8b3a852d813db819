//! How the guest is started: what the host puts in the initramfs and on the kernel command
//! line, and the boot timer's phases (guest init writes each to an I/O port; the VMM records
//! when).

/// The guest init, at the initramfs root (the kernel runs it: `rdinit=/init`).
pub const INIT: &str = "/init";
/// The directory of isola's files in the initramfs.
pub const ISOLA_DIR: &str = "/isola";
/// The bundle's process, resolved on the host (isola-process's `Plan`, as JSON).
pub const PROCESS: &str = "/isola/process.json";
/// The bundle's `linux.seccomp`, compiled by the host (isola-seccomp's byte form).
pub const SECCOMP: &str = "/isola/seccomp.bpf";

/// On the kernel command line when the host forwards stdin (`-i`).
pub const STDIN_FLAG: &str = "isola.stdin=1";

/// On the kernel command line when the workload waits for the host's `Start` (a runtime's
/// `create` boots the VM, its `start` runs the workload): init sends `Created` once set up.
pub const WAIT_FOR_START: &str = "isola.start=wait";

/// The I/O port guest init writes its phases to.
pub const BOOT_TIMER_PORT: u16 = 0x80;

/// A step of the guest's start and the workload's life, as written to the boot timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    InitStart = 2,
    WorkloadStart = 3,
    WorkloadExit = 4,
}

impl Phase {
    pub fn from_byte(b: u8) -> Option<Phase> {
        [Phase::InitStart, Phase::WorkloadStart, Phase::WorkloadExit]
            .into_iter()
            .find(|p| *p as u8 == b)
    }

    /// How `--timings` names it.
    pub fn name(self) -> &'static str {
        match self {
            Phase::InitStart => "init start",
            Phase::WorkloadStart => "workload start",
            Phase::WorkloadExit => "workload exit",
        }
    }
}
