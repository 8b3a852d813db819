//! The device allowlist on cgroup v2, which has no `devices` controller: an eBPF program of type
//! `BPF_PROG_TYPE_CGROUP_DEVICE`, assembled here from `linux.resources.devices` and attached to
//! the container's cgroup. The kernel runs it on every open and mknod of a device node by a
//! process in that cgroup or below; it answers 1 (allow) or 0 (deny, EPERM).
//!
//! The rules are read as cgroup v1 reads them: later rules override earlier ones, so the program
//! tests them last to first and the first match decides; no match denies.

use super::{io_err, CgroupError};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// One eBPF instruction (`struct bpf_insn`): opcode, registers (dst low nibble, src high),
/// jump offset, immediate.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const LDX_MEM_W: u8 = 0x61;
const ALU64_AND_K: u8 = 0x57;
const ALU64_RSH_K: u8 = 0x77;
const ALU64_MOV_K: u8 = 0xb7;
const ALU64_MOV_X: u8 = 0xbf;
const JMP_JNE_K: u8 = 0x55;
const JMP_JNE_X: u8 = 0x5d;
const JMP_JEQ_K: u8 = 0x15;
const JMP_EXIT: u8 = 0x95;

// Registers: r1 = context on entry; r2 = type, r3 = access, r4 = major, r5 = minor; r1 scratch.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// `struct bpf_cgroup_dev_ctx` types and access bits.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

fn access_bits(a: &str) -> Result<i32, String> {
    let mut bits = 0;
    for c in a.chars() {
        bits |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            other => {
                return Err(format!(
                    "linux.resources.devices: access {a:?} has {other:?} (expected r, w, m)"
                ))
            }
        };
    }
    Ok(bits)
}

/// The program for `rules`.
fn program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>, String> {
    let mut p = vec![
        insn(LDX_MEM_W, R2, R1, 0, 0),
        insn(ALU64_AND_K, R2, 0, 0, 0xffff),
        insn(LDX_MEM_W, R3, R1, 0, 0),
        insn(ALU64_RSH_K, R3, 0, 0, 16),
        insn(LDX_MEM_W, R4, R1, 4, 0),
        insn(LDX_MEM_W, R5, R1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        let access = access_bits(rule.access().as_deref().unwrap_or("rwm"))?;
        let mut body: Vec<Insn> = Vec::new();
        // Each test jumps past the rest of the rule when it fails; offsets are filled below,
        // once the rule's length is known (u16::MAX marks "to the end of this rule").
        match rule.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => {}
            LinuxDeviceType::B => body.push(insn(JMP_JNE_K, R2, 0, i16::MAX, DEV_BLOCK)),
            LinuxDeviceType::C | LinuxDeviceType::U => {
                body.push(insn(JMP_JNE_K, R2, 0, i16::MAX, DEV_CHAR))
            }
            LinuxDeviceType::P => continue, // FIFOs are not device nodes: never asked about
        }
        body.push(insn(ALU64_MOV_X, R1, R3, 0, 0));
        body.push(insn(ALU64_AND_K, R1, 0, 0, access));
        if rule.allow() {
            // Allow only if every access asked for is in the rule.
            body.push(insn(JMP_JNE_X, R1, R3, i16::MAX, 0));
        } else {
            // Deny if any access asked for is in the rule.
            body.push(insn(JMP_JEQ_K, R1, 0, i16::MAX, 0));
        }
        if let Some(major) = rule.major().filter(|m| *m >= 0) {
            body.push(insn(JMP_JNE_K, R4, 0, i16::MAX, major as i32));
        }
        if let Some(minor) = rule.minor().filter(|m| *m >= 0) {
            body.push(insn(JMP_JNE_K, R5, 0, i16::MAX, minor as i32));
        }
        body.push(insn(ALU64_MOV_K, R0, 0, 0, i32::from(rule.allow())));
        body.push(insn(JMP_EXIT, 0, 0, 0, 0));
        let len = body.len();
        for (i, b) in body.iter_mut().enumerate() {
            if b.off == i16::MAX {
                b.off = (len - i - 1) as i16;
            }
        }
        p.extend(body);
    }
    p.push(insn(ALU64_MOV_K, R0, 0, 0, 0));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    Ok(p)
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;

/// `union bpf_attr`, as large as any kernel reads; unused fields stay zero as it requires.
#[repr(C, align(8))]
struct BpfAttr([u8; 128]);

impl BpfAttr {
    fn put_u32(&mut self, off: usize, v: u32) {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    }
    fn put_u64(&mut self, off: usize, v: u64) {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
    }
}

fn bpf(cmd: libc::c_long, attr: &BpfAttr) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, zero-padded `union bpf_attr` of the size passed; every pointer
    // stored in it (instructions, license) points at memory that outlives the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *const BpfAttr, 128usize) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Loads the program for `rules` and attaches it to the cgroup directory `dir`. The attachment
/// lives as long as the cgroup; with no flags, nothing below it may attach a program of its own.
pub fn attach(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    let prog = program(rules).map_err(|e| {
        io_err(
            dir,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        )
    })?;
    let license = c"Apache-2.0";
    let mut attr = BpfAttr([0; 128]);
    attr.put_u32(0, BPF_PROG_TYPE_CGROUP_DEVICE);
    attr.put_u32(4, prog.len() as u32);
    attr.put_u64(8, prog.as_ptr() as u64);
    attr.put_u64(16, license.as_ptr() as u64);
    attr.put_u32(68, BPF_CGROUP_DEVICE); // expected_attach_type
    let fd = bpf(BPF_PROG_LOAD, &attr).map_err(|e| {
        io_err(
            dir,
            std::io::Error::new(e.kind(), format!("loading the device filter (bpf): {e}")),
        )
    })?;
    // SAFETY: BPF_PROG_LOAD returned a new descriptor that nothing else owns.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let cgroup = std::fs::File::open(dir).map_err(|e| io_err(dir, e))?;
    let mut attr = BpfAttr([0; 128]);
    attr.put_u32(0, cgroup.as_raw_fd() as u32);
    attr.put_u32(4, prog_fd.as_raw_fd() as u32);
    attr.put_u32(8, BPF_CGROUP_DEVICE);
    bpf(BPF_PROG_ATTACH, &attr).map_err(|e| {
        io_err(
            dir,
            std::io::Error::new(e.kind(), format!("attaching the device filter: {e}")),
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    /// Runs the program on one request, interpreting the few instructions it uses.
    fn decide(p: &[Insn], typ: i32, access: i32, major: u32, minor: u32) -> i64 {
        let ctx = [(typ | (access << 16)) as u32, major, minor];
        let mut r = [0i64; 6];
        let mut pc = 0;
        loop {
            let i = p[pc];
            pc += 1;
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            let skip = |c: bool| if c { i.off as usize } else { 0 };
            match i.code {
                LDX_MEM_W => r[dst] = i64::from(ctx[i.off as usize / 4]),
                ALU64_AND_K => r[dst] &= i64::from(i.imm),
                ALU64_RSH_K => r[dst] >>= i.imm,
                ALU64_MOV_K => r[dst] = i64::from(i.imm),
                ALU64_MOV_X => r[dst] = r[src],
                JMP_JNE_K => pc += skip(r[dst] != i64::from(i.imm)),
                JMP_JNE_X => pc += skip(r[dst] != r[src]),
                JMP_JEQ_K => pc += skip(r[dst] == i64::from(i.imm)),
                JMP_EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    fn rule(
        allow: bool,
        typ: LinuxDeviceType,
        mm: Option<(i64, i64)>,
        acc: &str,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access(acc.to_string());
        if let Some((major, minor)) = mm {
            b = b.major(major).minor(minor);
        }
        b.build().unwrap()
    }

    #[test]
    fn allowlist_after_deny_all() {
        let rules = vec![
            rule(false, LinuxDeviceType::A, None, "rwm"),
            rule(true, LinuxDeviceType::C, None, "m"),
            rule(true, LinuxDeviceType::C, Some((1, 3)), "rwm"),
            rule(true, LinuxDeviceType::C, Some((136, -1)), "rw"),
        ];
        let p = program(&rules).unwrap();
        let rw = ACC_READ | ACC_WRITE;
        assert_eq!(decide(&p, DEV_CHAR, rw, 1, 3), 1, "/dev/null");
        assert_eq!(decide(&p, DEV_CHAR, ACC_READ, 1, 11), 0, "/dev/kmsg");
        assert_eq!(decide(&p, DEV_CHAR, rw, 10, 232), 0, "/dev/kvm");
        assert_eq!(decide(&p, DEV_BLOCK, ACC_READ, 7, 5), 0, "a loop device");
        assert_eq!(
            decide(&p, DEV_CHAR, ACC_MKNOD, 10, 232),
            1,
            "mknod of any char"
        );
        assert_eq!(
            decide(&p, DEV_BLOCK, ACC_MKNOD, 7, 5),
            0,
            "mknod of a block device"
        );
        assert_eq!(decide(&p, DEV_CHAR, rw, 136, 7), 1, "a pty (any minor)");
        assert_eq!(decide(&p, DEV_CHAR, ACC_MKNOD, 136, 7), 1);
        assert_eq!(
            decide(&p, DEV_CHAR, rw | ACC_MKNOD, 136, 7),
            0,
            "more than the rule"
        );
    }

    #[test]
    fn later_rules_override() {
        let rules = vec![
            rule(true, LinuxDeviceType::A, None, "rwm"),
            rule(false, LinuxDeviceType::C, Some((1, 11)), "r"),
        ];
        let p = program(&rules).unwrap();
        assert_eq!(decide(&p, DEV_CHAR, ACC_READ, 1, 11), 0);
        assert_eq!(decide(&p, DEV_CHAR, ACC_WRITE, 1, 11), 1);
        assert_eq!(decide(&p, DEV_BLOCK, ACC_READ, 8, 0), 1);
        assert!(program(&[rule(true, LinuxDeviceType::A, None, "rx")]).is_err());
    }
}
