//! Can this KVM run an unmodified Linux guest? Decided by running one, in miniature: a 64-bit
//! guest with page tables, a GDT and an IDT executes `int3`; its breakpoint handler writes 0x42
//! to I/O port 0x80 and halts. A KVM that delivers guest exceptions reports that port write.
//! Nested PVM hypervisors (as on some clouds) fail here with an emulation error, and so would a
//! Linux kernel, at its first exception.

use crate::long_mode;
use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::{Kvm, VcpuExit};
use std::sync::mpsc;
use std::time::Duration;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

const MEM_SIZE: usize = 2 << 20;
const GDT: u64 = 0x1000;
const IDT: u64 = 0x2000;
const PML4: u64 = 0x3000;
const PDPT: u64 = 0x4000;
const PD: u64 = 0x5000;
const CODE: u64 = 0x6000;
const HANDLER: u64 = 0x7000;
const STACK_TOP: u64 = 0x9000;
const PROBE_PORT: u16 = 0x80;
const PROBE_VALUE: u8 = 0x42;

/// What the probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvmVerdict {
    /// /dev/kvm is absent or cannot be opened.
    Missing(String),
    /// KVM works but did not deliver the guest's exception (e.g. a nested PVM hypervisor).
    NoExceptions { api_version: i32, detail: String },
    /// The guest's int3 reached its handler: unmodified guests can run.
    Usable { api_version: i32 },
}

impl KvmVerdict {
    pub fn can_run_vms(&self) -> bool {
        matches!(self, KvmVerdict::Usable { .. })
    }
}

/// Runs the probe with a time limit (a broken KVM must not hang the caller).
pub fn probe_kvm(timeout: Duration) -> KvmVerdict {
    if !std::path::Path::new("/dev/kvm").exists() {
        return KvmVerdict::Missing("/dev/kvm does not exist".into());
    }
    let kvm = match Kvm::new() {
        Ok(k) => k,
        Err(e) => return KvmVerdict::Missing(format!("/dev/kvm cannot be opened: {e}")),
    };
    let api_version = kvm.get_api_version();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(run_probe_guest(&kvm, true));
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(())) => KvmVerdict::Usable { api_version },
        Ok(Err(detail)) => KvmVerdict::NoExceptions {
            api_version,
            detail,
        },
        Err(_) => KvmVerdict::NoExceptions {
            api_version,
            detail: format!("the probe guest did not finish within {timeout:?}"),
        },
    }
}

/// Lays out GDT, IDT (vector 3 → HANDLER), identity-mapped first 2 MiB, and the code: `int3`
/// when `exception`, else a plain jump to the handler (the control experiment).
fn write_guest(mem: &GuestMemoryMmap, exception: bool) -> Result<(), String> {
    let w = |addr: u64, bytes: &[u8]| {
        mem.write_slice(bytes, GuestAddress(addr))
            .map_err(|e| format!("writing probe guest memory: {e}"))
    };
    // GDT: null, 64-bit code, data.
    let gdt: [u64; 3] = [0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff];
    w(
        GDT,
        &gdt.iter()
            .flat_map(|e| e.to_le_bytes())
            .collect::<Vec<u8>>(),
    )?;
    // IDT entry 3: 64-bit interrupt gate, present, DPL 0, selector 0x08, offset HANDLER.
    let mut gate = [0u8; 16];
    gate[0..2].copy_from_slice(&((HANDLER & 0xffff) as u16).to_le_bytes());
    gate[2..4].copy_from_slice(&0x08u16.to_le_bytes());
    gate[5] = 0x8e;
    gate[6..8].copy_from_slice(&(((HANDLER >> 16) & 0xffff) as u16).to_le_bytes());
    gate[8..12].copy_from_slice(&((HANDLER >> 32) as u32).to_le_bytes());
    w(IDT + 3 * 16, &gate)?;
    long_mode::write_page_tables(mem, PML4, PDPT, PD, 1)?;
    if exception {
        // int3; hlt
        w(CODE, &[0xcc, 0xf4])?;
    } else {
        // jmp rel32 HANDLER
        let rel = (HANDLER as i64 - (CODE as i64 + 5)) as i32;
        let mut jmp = vec![0xe9];
        jmp.extend_from_slice(&rel.to_le_bytes());
        w(CODE, &jmp)?;
    }
    // mov al, 0x42; out 0x80, al; hlt
    w(HANDLER, &[0xb0, PROBE_VALUE, 0xe6, PROBE_PORT as u8, 0xf4])?;
    Ok(())
}

/// Runs the probe guest; Ok when its handler wrote the probe value to the probe port.
pub fn run_probe_guest(kvm: &Kvm, exception: bool) -> Result<(), String> {
    let mem: GuestMemoryMmap = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)])
        .map_err(|e| format!("guest memory: {e}"))?;
    let vm = kvm.create_vm().map_err(|e| format!("KVM_CREATE_VM: {e}"))?;
    let host_addr = mem
        .get_host_address(GuestAddress(0))
        .map_err(|e| format!("guest memory: {e}"))?;
    let region = kvm_bindings::kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: 0,
        memory_size: MEM_SIZE as u64,
        userspace_addr: host_addr as u64,
        flags: 0,
    };
    // SAFETY: the region is `mem`'s one mapping, valid for MEM_SIZE bytes; `mem` is declared
    // before `vm`, so it outlives the VM and every vCPU run.
    unsafe { vm.set_user_memory_region(region) }
        .map_err(|e| format!("KVM_SET_USER_MEMORY_REGION: {e}"))?;
    write_guest(&mem, exception)?;

    let vcpu = vm
        .create_vcpu(0)
        .map_err(|e| format!("KVM_CREATE_VCPU: {e}"))?;
    let cpuid = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(|e| format!("KVM_GET_SUPPORTED_CPUID: {e}"))?;
    vcpu.set_cpuid2(&cpuid)
        .map_err(|e| format!("KVM_SET_CPUID2: {e}"))?;
    let mut sregs = vcpu
        .get_sregs()
        .map_err(|e| format!("KVM_GET_SREGS: {e}"))?;
    long_mode::set_long_mode(&mut sregs, GDT, IDT, 4 * 16 - 1, PML4);
    vcpu.set_sregs(&sregs)
        .map_err(|e| format!("KVM_SET_SREGS: {e}"))?;
    let mut regs = vcpu.get_regs().map_err(|e| format!("KVM_GET_REGS: {e}"))?;
    regs.rip = CODE;
    regs.rsp = STACK_TOP;
    regs.rflags = 0x2;
    vcpu.set_regs(&regs)
        .map_err(|e| format!("KVM_SET_REGS: {e}"))?;

    let mut vcpu = vcpu;
    for _ in 0..16 {
        match vcpu.run() {
            Ok(VcpuExit::IoOut(port, data))
                if port == PROBE_PORT && data.first() == Some(&PROBE_VALUE) =>
            {
                return Ok(());
            }
            Ok(VcpuExit::IoOut(..)) | Ok(VcpuExit::IoIn(..)) => continue,
            Ok(VcpuExit::Hlt) => {
                return Err("the guest halted without its int3 handler running".into());
            }
            Ok(VcpuExit::InternalError) => {
                return Err(
                    "KVM_EXIT_INTERNAL_ERROR at the guest's int3 (the exception was not delivered)"
                        .into(),
                );
            }
            Ok(VcpuExit::Shutdown) => return Err("the guest triple-faulted at its int3".into()),
            Ok(VcpuExit::FailEntry(reason, _)) => {
                return Err(format!(
                    "KVM could not enter the guest (hardware entry failure {reason:#x})"
                ))
            }
            Ok(other) => return Err(format!("unexpected exit {other:?}")),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => continue,
            Err(e) => return Err(format!("KVM_RUN: {e}")),
        }
    }
    Err("the guest never reached its int3 handler".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without an exception, the same 64-bit guest must reach its handler on any working KVM
    /// (PVM included): this shows the probe's long-mode setup is right, so a failed int3 run
    /// means the exception was not delivered, not that the probe is broken.
    #[test]
    fn long_mode_setup_runs_without_exceptions() {
        let Ok(kvm) = Kvm::new() else {
            eprintln!("SKIPPED long_mode_setup_runs_without_exceptions: /dev/kvm cannot be opened on this host");
            return;
        };
        run_probe_guest(&kvm, false).unwrap();
    }
}
