//! The compiled programs run through a small classic-BPF interpreter on made-up calls.

use super::*;
use crate::bpf::*;
use crate::{syscall_number, Filter};
use oci_spec::runtime::{LinuxSeccompArgBuilder, LinuxSeccompBuilder, LinuxSyscallBuilder};

fn run(prog: &[SockFilter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    interpret(prog, arch, nr, args)
}

const ALLOW: u32 = 0x7fff_0000;
const EPERM: u32 = 0x0005_0001;

fn arg(index: usize, op: Op, value: u64, two: Option<u64>) -> LinuxSeccompArg {
    let mut b = LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value);
    if let Some(t) = two {
        b = b.value_two(t);
    }
    b.build().unwrap()
}

fn profile(rules: Vec<(&str, Vec<LinuxSeccompArg>)>) -> Vec<SockFilter> {
    let syscalls = rules
        .into_iter()
        .map(|(name, args)| {
            let mut b = LinuxSyscallBuilder::default()
                .names(vec![name.to_string()])
                .action(Action::ScmpActAllow);
            if !args.is_empty() {
                b = b.args(args);
            }
            b.build().unwrap()
        })
        .collect::<Vec<_>>();
    let s = LinuxSeccompBuilder::default()
        .default_action(Action::ScmpActErrno)
        .default_errno_ret(1u32)
        .syscalls(syscalls)
        .build()
        .unwrap();
    compile(&s).unwrap().program
}

fn nr(name: &str) -> u32 {
    syscall_number(name).unwrap()
}

#[test]
fn plain_allow_and_default() {
    let p = profile(vec![("read", vec![]), ("write", vec![])]);
    assert_eq!(run(&p, AUDIT_ARCH_X86_64, nr("read"), [0; 6]), ALLOW);
    assert_eq!(run(&p, AUDIT_ARCH_X86_64, nr("write"), [0; 6]), ALLOW);
    assert_eq!(run(&p, AUDIT_ARCH_X86_64, nr("keyctl"), [0; 6]), EPERM);
    // i386 calls and x32 calls get the default action, unknown future calls ENOSYS.
    assert_eq!(run(&p, 0x4000_0003, nr("read"), [0; 6]), EPERM);
    assert_eq!(
        run(&p, AUDIT_ARCH_X86_64, nr("read") | X32_SYSCALL_BIT, [0; 6]),
        EPERM
    );
    assert_eq!(run(&p, AUDIT_ARCH_X86_64, 999, [0; 6]), 0x0005_0000 | 38);
}

#[test]
fn argument_comparisons_use_all_64_bits() {
    let big = 0x1_0000_0005u64;
    type Case = (Op, u64, Vec<(u64, bool)>);
    let cases: Vec<Case> = vec![
        (
            Op::ScmpCmpEq,
            big,
            vec![(big, true), (5, false), (big + 1, false)],
        ),
        (
            Op::ScmpCmpNe,
            big,
            vec![(big, false), (5, true), (big + 1, true)],
        ),
        (
            Op::ScmpCmpGt,
            big,
            vec![(big, false), (big + 1, true), (5, false), (u64::MAX, true)],
        ),
        (
            Op::ScmpCmpGe,
            big,
            vec![(big, true), (big - 1, false), (1 << 40, true)],
        ),
        (
            Op::ScmpCmpLt,
            big,
            vec![(big, false), (big - 1, true), (6, true), (1 << 40, false)],
        ),
        (
            Op::ScmpCmpLe,
            big,
            vec![(big, true), (big + 1, false), (0, true)],
        ),
    ];
    for (op, value, checks) in cases {
        let p = profile(vec![("ioctl", vec![arg(1, op, value, None)])]);
        for (x, allowed) in checks {
            let got = run(&p, AUDIT_ARCH_X86_64, nr("ioctl"), [0, x, 0, 0, 0, 0]);
            assert_eq!(got == ALLOW, allowed, "{op:?} {value:#x} on {x:#x}");
        }
    }
}

#[test]
fn masked_eq_as_docker_filters_clone() {
    let ns_flags = 0x7E02_0000u64;
    let p = profile(vec![(
        "clone",
        vec![arg(0, Op::ScmpCmpMaskedEq, ns_flags, None)],
    )]);
    let clone = nr("clone");
    let thread = (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
    assert_eq!(
        run(&p, AUDIT_ARCH_X86_64, clone, [thread, 0, 0, 0, 0, 0]),
        ALLOW
    );
    let userns = libc::CLONE_NEWUSER as u64;
    assert_eq!(
        run(&p, AUDIT_ARCH_X86_64, clone, [userns, 0, 0, 0, 0, 0]),
        EPERM
    );
}

#[test]
fn conditions_on_one_argument_are_alternatives() {
    let p = profile(vec![(
        "personality",
        vec![
            arg(0, Op::ScmpCmpEq, 0, None),
            arg(0, Op::ScmpCmpEq, 8, None),
        ],
    )]);
    let n = nr("personality");
    assert_eq!(run(&p, AUDIT_ARCH_X86_64, n, [0; 6]), ALLOW);
    assert_eq!(run(&p, AUDIT_ARCH_X86_64, n, [8, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(run(&p, AUDIT_ARCH_X86_64, n, [9, 0, 0, 0, 0, 0]), EPERM);
    // Distinct arguments: all must hold.
    let p = profile(vec![(
        "socket",
        vec![
            arg(0, Op::ScmpCmpNe, 40, None),
            arg(1, Op::ScmpCmpEq, 1, None),
        ],
    )]);
    let s = nr("socket");
    assert_eq!(run(&p, AUDIT_ARCH_X86_64, s, [2, 1, 0, 0, 0, 0]), ALLOW);
    assert_eq!(run(&p, AUDIT_ARCH_X86_64, s, [40, 1, 0, 0, 0, 0]), EPERM);
    assert_eq!(run(&p, AUDIT_ARCH_X86_64, s, [2, 2, 0, 0, 0, 0]), EPERM);
}

#[test]
fn bad_profiles_are_named() {
    let s = LinuxSeccompBuilder::default()
        .default_action(Action::ScmpActErrno)
        .architectures(vec![Arch::ScmpArchAarch64])
        .build()
        .unwrap();
    assert!(compile(&s).unwrap_err().contains("SCMP_ARCH_X86_64"));
    let s = LinuxSeccompBuilder::default()
        .default_action(Action::ScmpActNotify)
        .build()
        .unwrap();
    assert!(compile(&s).unwrap_err().contains("SCMP_ACT_NOTIFY"));
}

#[test]
fn the_byte_form_round_trips_and_rejects_partial_programs() {
    let s = LinuxSeccompBuilder::default()
        .default_action(Action::ScmpActErrno)
        .flags(vec![Flag::SeccompFilterFlagLog])
        .syscalls(vec![LinuxSyscallBuilder::default()
            .names(vec!["read".to_string()])
            .action(Action::ScmpActAllow)
            .build()
            .unwrap()])
        .build()
        .unwrap();
    let f = compile(&s).unwrap();
    let bytes = f.to_bytes();
    assert_eq!(bytes.len(), 8 + 8 * f.program.len());
    let back = Filter::from_bytes(&bytes).unwrap();
    assert_eq!(back.program, f.program);
    assert_eq!(back.flags, libc::SECCOMP_FILTER_FLAG_LOG);
    assert_eq!(back.verdict(nr("read"), [0; 6]), ALLOW);
    for bad in [&bytes[..8], &bytes[..bytes.len() - 3], &[][..]] {
        let e = Filter::from_bytes(bad).unwrap_err();
        assert!(e.contains(&format!("{} bytes", bad.len())), "{e}");
    }
}
