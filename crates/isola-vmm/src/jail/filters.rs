//! What each kind of VMM thread may still ask of the host kernel once the guest runs: one
//! seccomp allowlist per thread kind, in the OCI rule form `isola-seccomp` compiles. Anything
//! else traps (SIGSYS: the VMM reports the call and exits). None of them may open, exec, fork,
//! map executable memory, make sockets, or issue any ioctl but KVM_RUN (and, on a vCPU thread,
//! the network device's TUNSETOFFLOAD on its tap, and the virtio-fs device's vhost-user
//! messages on the connection the front end made). Opening a file is
//! refused with EACCES rather than trapped: the root is empty anyway, and a library that only
//! probes a file (glibc and Rust's std do, on rare paths) then carries on instead of ending the
//! VM.

use isola_seccomp::Filter;
use oci_spec::runtime::{
    LinuxSeccompAction as Action, LinuxSeccompArg, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator as Op, LinuxSyscall, LinuxSyscallBuilder,
};

/// The kinds of thread in a running VMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadKind {
    /// Runs one vCPU: KVM_RUN, and the device work its exits cause (disk reads, interrupts
    /// as eventfd writes, output to the front end's pipes, frames to and from the tap).
    Vcpu,
    /// Moves the front end's frames (stdin, signals, window sizes) into the guest's console.
    Input,
    /// Moves frames between the network device's queues and its tap (reads and writes on
    /// descriptors it holds, woken by epoll).
    Net,
    /// The main thread: watches the time limits, kicks vCPUs out of KVM_RUN, writes the report.
    Supervisor,
}

/// KVM_RUN: `_IO(KVMIO, 0x80)`.
pub const KVM_RUN: u64 = 0xae80;
/// TUNSETOFFLOAD: `_IOW('T', 208, unsigned int)`, the network device's one ioctl.
pub const TUNSETOFFLOAD: u64 = crate::virtio::net::TUNSETOFFLOAD;

/// Every thread: memory (never executable), locks, time, its own end, writes to descriptors
/// it already holds (eventfds, the front end's pipes).
const COMMON: &[&str] = &[
    "brk",
    "clock_gettime",
    "clock_nanosleep",
    "close",
    "exit",
    "exit_group",
    "futex",
    "getpid",
    "getrandom",
    "gettid",
    "madvise",
    "mremap",
    "munmap",
    "nanosleep",
    "restart_syscall",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sched_yield",
    "sigaltstack",
    "write",
];

/// pread64: the root disk. readv, writev: the network device's tap, when a register write
/// runs its queues on the vCPU (the driver becoming ready; a notification KVM's ioeventfd does
/// not match, such as a narrower write).
const VCPU: &[&str] = &["pread64", "readv", "writev"];
const INPUT: &[&str] = &[
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_wait",
    "read",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
];
/// read: its eventfds; readv, writev: frames between the tap and guest memory.
const NET: &[&str] = &[
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_wait",
    "read",
    "readv",
    "writev",
];
const SUPERVISOR: &[&str] = &["alarm", "mincore"];

fn rule(names: &[&str], args: Vec<LinuxSeccompArg>) -> LinuxSyscall {
    LinuxSyscallBuilder::default()
        .names(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .action(Action::ScmpActAllow)
        .args(args)
        .build()
        .expect("every field of the rule is set")
}

/// Calls that fail with EACCES instead of trapping.
const REFUSED: &[&str] = &["open", "openat", "openat2", "creat"];

fn refused() -> LinuxSyscall {
    LinuxSyscallBuilder::default()
        .names(REFUSED.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .action(Action::ScmpActErrno)
        .errno_ret(libc::EACCES as u32)
        .build()
        .expect("every field of the rule is set")
}

fn arg(index: usize, op: Op, value: u64, value_two: u64) -> LinuxSeccompArg {
    LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value)
        .value_two(value_two)
        .build()
        .expect("every field of the argument is set")
}

/// The signal that kicks a vCPU out of KVM_RUN (see vcpus.rs).
fn kick_signal() -> u64 {
    libc::SIGRTMIN() as u64 + 1
}

/// The rules for one thread kind.
pub fn rules(kind: ThreadKind) -> Vec<LinuxSyscall> {
    let prot_exec = libc::PROT_EXEC as u64;
    let mut rules = vec![
        rule(COMMON, vec![]),
        refused(),
        // Memory, but never executable: arg 2 is `prot` for both.
        rule(
            &["mmap", "mprotect"],
            vec![arg(2, Op::ScmpCmpMaskedEq, prot_exec, 0)],
        ),
        // abort() raises SIGABRT at itself; in its own PID namespace the VMM reaches no one else.
        rule(
            &["tgkill"],
            vec![arg(2, Op::ScmpCmpEq, libc::SIGABRT as u64, 0)],
        ),
    ];
    match kind {
        ThreadKind::Vcpu => {
            rules.push(rule(VCPU, vec![]));
            rules.push(rule(&["ioctl"], vec![arg(1, Op::ScmpCmpEq, KVM_RUN, 0)]));
            // The network device's activation: the tap's offloads, as the driver took them.
            rules.push(rule(
                &["ioctl"],
                vec![arg(1, Op::ScmpCmpEq, TUNSETOFFLOAD, 0)],
            ));
            // The virtio-fs device's activation: its vhost-user messages (the memory's and
            // eventfds' descriptors attached), sent as the vhost crate sends, without waiting
            // for a reply; the VMM's one socket is that connection, made by the front end.
            rules.push(rule(
                &["sendmsg"],
                vec![arg(2, Op::ScmpCmpEq, libc::MSG_NOSIGNAL as u64, 0)],
            ));
        }
        ThreadKind::Input => rules.push(rule(INPUT, vec![])),
        ThreadKind::Net => rules.push(rule(NET, vec![])),
        ThreadKind::Supervisor => {
            rules.push(rule(SUPERVISOR, vec![]));
            rules.push(rule(
                &["tgkill"],
                vec![arg(2, Op::ScmpCmpEq, kick_signal(), 0)],
            ));
        }
    }
    rules
}

/// Compiles the allowlist of one thread kind; anything not on it traps.
pub fn compile(kind: ThreadKind) -> Result<Filter, String> {
    let spec = LinuxSeccompBuilder::default()
        .default_action(Action::ScmpActTrap)
        .syscalls(rules(kind))
        .build()
        .map_err(|e| format!("the VMM's seccomp rules: {e}"))?;
    isola_seccomp::compile(&spec).map_err(|e| format!("the VMM's {kind:?} seccomp filter: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW: u32 = 0x7fff_0000;
    const TRAP: u32 = 0x0003_0000;
    const KINDS: [ThreadKind; 4] = [
        ThreadKind::Vcpu,
        ThreadKind::Input,
        ThreadKind::Net,
        ThreadKind::Supervisor,
    ];

    fn nr(name: &str) -> u32 {
        isola_seccomp::syscall_number(name).unwrap_or_else(|| panic!("{name}: no such call"))
    }

    #[test]
    fn every_listed_call_exists_on_x86_64() {
        for kind in KINDS {
            for r in rules(kind) {
                for name in r.names() {
                    nr(name);
                }
            }
        }
    }

    #[test]
    fn no_thread_can_open_exec_fork_or_connect() {
        for kind in KINDS {
            let f = compile(kind).unwrap();
            for call in REFUSED {
                let eacces = 0x0005_0000 | libc::EACCES as u32;
                assert_eq!(f.verdict(nr(call), [0; 6]), eacces, "{kind:?} may {call}");
            }
            for call in [
                "execve",
                "execveat",
                "fork",
                "vfork",
                "clone",
                "clone3",
                "socket",
                "connect",
                "ptrace",
                "kill",
                "mount",
                "unshare",
                "setns",
                "bpf",
                "keyctl",
                "pivot_root",
                "chroot",
                "prctl",
                "seccomp",
                "setuid",
                "memfd_create",
                "process_vm_writev",
                "io_uring_setup",
                "userfaultfd",
            ] {
                assert_eq!(f.verdict(nr(call), [0; 6]), TRAP, "{kind:?} may {call}");
            }
            // Executable memory, by any of the ways to ask for it.
            for call in ["mmap", "mprotect"] {
                let exec = [0, 4096, (libc::PROT_READ | libc::PROT_EXEC) as u64, 0, 0, 0];
                assert_eq!(
                    f.verdict(nr(call), exec),
                    TRAP,
                    "{kind:?} may {call} PROT_EXEC"
                );
                let rw = [
                    0,
                    4096,
                    (libc::PROT_READ | libc::PROT_WRITE) as u64,
                    0,
                    0,
                    0,
                ];
                assert_eq!(f.verdict(nr(call), rw), ALLOW, "{kind:?} may not {call} RW");
            }
            // Signals only at itself, and only abort's (or the supervisor's kick).
            let kill = [1, 1, libc::SIGKILL as u64, 0, 0, 0];
            assert_eq!(f.verdict(nr("tgkill"), kill), TRAP);
        }
    }

    #[test]
    fn only_vcpu_threads_send_on_a_socket_and_none_receives() {
        let (send, recv) = (nr("sendmsg"), nr("recvmsg"));
        let nosignal = [9, 0x1000, libc::MSG_NOSIGNAL as u64, 0, 0, 0];
        for kind in KINDS {
            let f = compile(kind).unwrap();
            let want = if kind == ThreadKind::Vcpu {
                ALLOW
            } else {
                TRAP
            };
            assert_eq!(f.verdict(send, nosignal), want, "{kind:?} sendmsg");
            assert_eq!(f.verdict(send, [9, 0x1000, 0, 0, 0, 0]), TRAP, "{kind:?}");
            assert_eq!(f.verdict(recv, [9, 0x1000, 0, 0, 0, 0]), TRAP, "{kind:?}");
            assert_eq!(f.verdict(nr("sendto"), nosignal), TRAP, "{kind:?}");
        }
    }

    #[test]
    fn only_vcpu_threads_may_ioctl_and_only_kvm_run() {
        let ioctl = nr("ioctl");
        let vcpu = compile(ThreadKind::Vcpu).unwrap();
        assert_eq!(vcpu.verdict(ioctl, [5, KVM_RUN, 0, 0, 0, 0]), ALLOW);
        assert_eq!(vcpu.verdict(ioctl, [5, TUNSETOFFLOAD, 7, 0, 0, 0]), ALLOW);
        // Upper bits set: the kernel would see KVM_RUN, the filter sees another number.
        assert_eq!(
            vcpu.verdict(ioctl, [5, KVM_RUN | 1 << 32, 0, 0, 0, 0]),
            TRAP
        );
        for other in [
            0xae01u64,   // KVM_CREATE_VM
            0xae41,      // KVM_CREATE_VCPU
            0x4020_ae46, // KVM_SET_USER_MEMORY_REGION
            0x5412,      // TIOCSTI
            0x5421,      // FIONBIO
        ] {
            assert_eq!(
                vcpu.verdict(ioctl, [5, other, 0, 0, 0, 0]),
                TRAP,
                "{other:#x}"
            );
        }
        for kind in [ThreadKind::Input, ThreadKind::Net, ThreadKind::Supervisor] {
            let f = compile(kind).unwrap();
            assert_eq!(f.verdict(ioctl, [5, KVM_RUN, 0, 0, 0, 0]), TRAP, "{kind:?}");
        }
    }

    #[test]
    fn each_kind_keeps_what_its_work_needs() {
        let v = compile(ThreadKind::Vcpu).unwrap();
        let i = compile(ThreadKind::Input).unwrap();
        let s = compile(ThreadKind::Supervisor).unwrap();
        let n = compile(ThreadKind::Net).unwrap();
        assert_eq!(n.verdict(nr("epoll_wait"), [0; 6]), ALLOW);
        assert_eq!(n.verdict(nr("read"), [0; 6]), ALLOW);
        assert_eq!(n.verdict(nr("readv"), [0; 6]), ALLOW);
        assert_eq!(n.verdict(nr("writev"), [0; 6]), ALLOW);
        assert_eq!(v.verdict(nr("readv"), [0; 6]), ALLOW);
        assert_eq!(i.verdict(nr("readv"), [0; 6]), TRAP);
        assert_eq!(n.verdict(nr("pread64"), [0; 6]), TRAP);
        assert_eq!(n.verdict(nr("timerfd_create"), [0; 6]), TRAP);
        assert_eq!(s.verdict(nr("read"), [0; 6]), TRAP);
        assert_eq!(v.verdict(nr("pread64"), [0; 6]), ALLOW);
        assert_eq!(i.verdict(nr("pread64"), [0; 6]), TRAP);
        assert_eq!(i.verdict(nr("epoll_wait"), [0; 6]), ALLOW);
        assert_eq!(v.verdict(nr("epoll_wait"), [0; 6]), TRAP);
        let kick = [1, 2, kick_signal(), 0, 0, 0];
        assert_eq!(s.verdict(nr("tgkill"), kick), ALLOW);
        assert_eq!(v.verdict(nr("tgkill"), kick), TRAP);
        for f in [&v, &i, &n, &s] {
            assert_eq!(f.verdict(nr("write"), [1, 0, 1, 0, 0, 0]), ALLOW);
            assert_eq!(f.verdict(nr("futex"), [0; 6]), ALLOW);
        }
    }
}
