//! A compiled filter: install it, ask it for a verdict, or carry it as bytes to where it is
//! installed (the guest init gets the bundle's filter in its initramfs, compiled by the host).
//!
//! The byte form: the filter flags (u64 LE), then each instruction as the kernel's
//! `struct sock_filter` (code u16 LE, jt u8, jf u8, k u32 LE).

use crate::bpf::{self, SockFilter};
use crate::AUDIT_ARCH_X86_64;

/// The kernel's limit on a classic BPF program's length.
const BPF_MAXINSNS: usize = 4096;

/// A compiled filter, ready to install.
#[derive(Debug)]
pub struct Filter {
    pub(crate) program: Vec<SockFilter>,
    pub(crate) flags: libc::c_ulong,
}

impl Filter {
    pub(crate) fn new(program: Vec<SockFilter>, flags: libc::c_ulong) -> Filter {
        Filter { program, flags }
    }

    /// How many BPF instructions the program has.
    pub fn len(&self) -> usize {
        self.program.len()
    }

    /// Whether the program is empty (never, once made).
    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }

    /// The byte form (see the module's documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 8 * self.program.len());
        out.extend_from_slice(&self.flags.to_le_bytes());
        for f in &self.program {
            out.extend_from_slice(&f.code.to_le_bytes());
            out.extend_from_slice(&[f.jt, f.jf]);
            out.extend_from_slice(&f.k.to_le_bytes());
        }
        out
    }

    /// Reads the byte form back; a length that is not whole instructions, or no instruction
    /// or more than the kernel takes, is an error.
    pub fn from_bytes(b: &[u8]) -> Result<Filter, String> {
        let n = b.len().saturating_sub(8) / 8;
        if n == 0 || 8 + 8 * n != b.len() || n > BPF_MAXINSNS {
            return Err(format!(
                "a seccomp program of {} bytes (expected 8 bytes of flags and 1 to {BPF_MAXINSNS} instructions of 8)",
                b.len()
            ));
        }
        let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let program = (1..=n)
            .map(|i| {
                let w = word(8 * i).to_le_bytes();
                SockFilter {
                    code: u16::from_le_bytes([w[0], w[1]]),
                    jt: w[2],
                    jf: w[3],
                    k: u32::from_le_bytes([w[4], w[5], w[6], w[7]]),
                }
            })
            .collect();
        Ok(Filter::new(program, word(0) as libc::c_ulong))
    }

    /// What the kernel would answer for this x86-64 call: the program run through a small
    /// classic-BPF interpreter (for tests of the filters isola builds).
    pub fn verdict(&self, nr: u32, args: [u64; 6]) -> u32 {
        bpf::interpret(&self.program, AUDIT_ARCH_X86_64, nr, args)
    }

    /// Installs the filter on the calling thread only (the container's init, single threaded
    /// and about to exec; a VMM thread as it starts). Needs no_new_privs or CAP_SYS_ADMIN.
    pub fn install(&self) -> Result<(), String> {
        let prog = libc::sock_fprog {
            len: self.program.len() as u16,
            filter: self.program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at `self.program`, a live array of `len` instructions laid out
        // as `struct sock_filter` (#[repr(C)], same fields); the kernel copies it during the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if r != 0 {
            return Err(format!(
                "installing the seccomp filter: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }
}
