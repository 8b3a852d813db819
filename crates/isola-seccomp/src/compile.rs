//! The compiler: OCI seccomp rules to a classic BPF program.
//!
//! The program, top to bottom: a foreign architecture (32-bit `int 0x80` calls) or an x32 call
//! gets the default action; a call number above every call isola knows gets ENOSYS (so a libc
//! newer than the profile falls back, as runc arranges); then one rule after another, first match
//! wins: `nr == N && args match → action`; nothing matched → the default action.

use crate::bpf::{Assembler, Target, JEQ_K, JGE_K, JGT_K};
use crate::syscalls_x86_64::SYSCALLS;
use crate::{Filter, AUDIT_ARCH_X86_64};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompArg,
    LinuxSeccompFilterFlag as Flag, LinuxSeccompOperator as Op,
};

const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const BPF_MAXINSNS: usize = 4096;

// Offsets into `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
fn off_arg_lo(i: usize) -> u32 {
    16 + 8 * i as u32
}
fn off_arg_hi(i: usize) -> u32 {
    off_arg_lo(i) + 4
}

fn ret_value(action: Action, errno: Option<u32>, default_errno: u32) -> Result<u32, String> {
    Ok(match action {
        Action::ScmpActKill | Action::ScmpActKillThread => 0, // SECCOMP_RET_KILL_THREAD
        Action::ScmpActKillProcess => 0x8000_0000,
        Action::ScmpActTrap => 0x0003_0000,
        Action::ScmpActErrno => 0x0005_0000 | (errno.unwrap_or(default_errno) & 0xffff),
        Action::ScmpActTrace => 0x7ff0_0000 | (errno.unwrap_or(0) & 0xffff),
        Action::ScmpActLog => 0x7ffc_0000,
        Action::ScmpActAllow => 0x7fff_0000,
        Action::ScmpActNotify => return Err(
            "linux.seccomp: SCMP_ACT_NOTIFY needs a seccomp agent, which isola does not support"
                .into(),
        ),
    })
}

/// Emits the test of one argument condition: falls through when it holds, jumps to `fail`
/// when it does not.
fn condition(a: &mut Assembler, arg: &LinuxSeccompArg, fail: usize) -> Result<(), String> {
    let i = arg.index();
    if i > 5 {
        return Err(format!(
            "linux.seccomp: argument index {i} (a system call has 6 arguments, 0 to 5)"
        ));
    }
    let hi = |v: u64| (v >> 32) as u32;
    let lo = |v: u64| v as u32;
    let v = arg.value();
    let fail = Target::Label(fail);
    let next = Target::Next;
    let done = a.label();
    let ok = Target::Label(done);
    match arg.op() {
        Op::ScmpCmpEq => {
            a.load(off_arg_hi(i));
            a.jump(JEQ_K, hi(v), next, fail);
            a.load(off_arg_lo(i));
            a.jump(JEQ_K, lo(v), next, fail);
        }
        Op::ScmpCmpNe => {
            a.load(off_arg_hi(i));
            a.jump(JEQ_K, hi(v), next, ok);
            a.load(off_arg_lo(i));
            a.jump(JEQ_K, lo(v), fail, next);
        }
        Op::ScmpCmpMaskedEq => {
            // OCI: `value` is the mask, `valueTwo` what the masked argument must equal.
            let want = arg.value_two().unwrap_or(0);
            a.load(off_arg_hi(i));
            a.and(hi(v));
            a.jump(JEQ_K, hi(want), next, fail);
            a.load(off_arg_lo(i));
            a.and(lo(v));
            a.jump(JEQ_K, lo(want), next, fail);
        }
        Op::ScmpCmpGt | Op::ScmpCmpGe => {
            // High words decide unless equal; then the low words.
            a.load(off_arg_hi(i));
            a.jump(JGT_K, hi(v), ok, next);
            a.jump(JEQ_K, hi(v), next, fail);
            a.load(off_arg_lo(i));
            let code = if arg.op() == Op::ScmpCmpGt {
                JGT_K
            } else {
                JGE_K
            };
            a.jump(code, lo(v), ok, fail);
        }
        Op::ScmpCmpLt | Op::ScmpCmpLe => {
            a.load(off_arg_hi(i));
            a.jump(JGE_K, hi(v), next, ok);
            a.jump(JEQ_K, hi(v), next, fail);
            a.load(off_arg_lo(i));
            // lo < v is !(lo >= v); lo <= v is !(lo > v).
            let code = if arg.op() == Op::ScmpCmpLt {
                JGE_K
            } else {
                JGT_K
            };
            a.jump(code, lo(v), fail, ok);
        }
    }
    a.place(done);
    Ok(())
}

/// The bundle's filter: `linux.seccomp` compiled, `None` when it has none.
pub fn compile_spec(spec: &oci_spec::runtime::Spec) -> Result<Option<Filter>, String> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(compile)
        .transpose()
}

/// Compiles `linux.seccomp`. Names of calls x86-64 does not have are skipped (a profile may list
/// other architectures' calls); anything else unusable is an error naming the field.
pub fn compile(s: &LinuxSeccomp) -> Result<Filter, String> {
    if let Some(arches) = s.architectures() {
        let ours = [Arch::ScmpArchX86_64, Arch::ScmpArchNative];
        if !arches.is_empty() && !arches.iter().any(|a| ours.contains(a)) {
            return Err(format!(
                "linux.seccomp.architectures {arches:?} does not include SCMP_ARCH_X86_64"
            ));
        }
    }
    if s.listener_path().is_some() {
        return Err("linux.seccomp.listenerPath: seccomp agents are not supported".into());
    }
    let default_errno = s.default_errno_ret().unwrap_or(libc::EPERM as u32);
    let default = ret_value(s.default_action(), None, default_errno)?;
    let max_known = SYSCALLS.iter().map(|(_, nr)| *nr).max().unwrap_or(0);
    let numbers: std::collections::HashMap<&str, u32> = SYSCALLS.iter().copied().collect();

    let mut a = Assembler::default();
    let native = a.label();
    a.load(OFF_ARCH);
    a.jump(
        JEQ_K,
        AUDIT_ARCH_X86_64,
        Target::Label(native),
        Target::Next,
    );
    a.ret(default);
    a.place(native);
    a.load(OFF_NR);
    let not_x32 = a.label();
    a.jump(JGE_K, X32_SYSCALL_BIT, Target::Next, Target::Label(not_x32));
    a.ret(default);
    a.place(not_x32);
    let known = a.label();
    a.jump(JGT_K, max_known, Target::Next, Target::Label(known));
    a.ret(0x0005_0000 | libc::ENOSYS as u32);
    a.place(known);

    let mut acc_is_nr = true;
    for rule in s.syscalls().as_deref().unwrap_or_default() {
        let action = ret_value(rule.action(), rule.errno_ret(), libc::EPERM as u32)?;
        let args = rule.args().as_deref().unwrap_or_default();
        // Conditions on distinct arguments must all hold; several on one argument are
        // alternatives, each its own rule (runc's reading of the spec).
        let repeated = args
            .iter()
            .enumerate()
            .any(|(i, x)| args[..i].iter().any(|y| y.index() == x.index()));
        let groups: Vec<&[LinuxSeccompArg]> = if repeated {
            args.chunks(1).collect()
        } else {
            vec![args]
        };
        for name in rule.names() {
            let Some(&nr) = numbers.get(name.as_str()) else {
                continue;
            };
            for conds in &groups {
                if !acc_is_nr {
                    a.load(OFF_NR);
                }
                let next = a.label();
                a.jump(JEQ_K, nr, Target::Next, Target::Label(next));
                for c in conds.iter() {
                    condition(&mut a, c, next)?;
                }
                a.ret(action);
                a.place(next);
                acc_is_nr = conds.is_empty();
            }
        }
    }
    a.ret(default);
    if a.len() > BPF_MAXINSNS {
        return Err(format!(
            "linux.seccomp: the profile compiles to {} BPF instructions, more than the kernel's {BPF_MAXINSNS}",
            a.len()
        ));
    }
    let mut flags: libc::c_ulong = 0;
    for f in s.flags().as_deref().unwrap_or_default() {
        flags |= match f {
            Flag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            Flag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            Flag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        };
    }
    Ok(Filter::new(a.finish()?, flags))
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
