//! Configuring a vCPU for the 64-bit Linux boot protocol: CPUID from what KVM supports (with
//! this vCPU's APIC ID), boot MSRs, FPU, the local APIC's LINT pins, 64-bit mode registers with
//! RSI pointing at the zero page.

use crate::layout::*;
use crate::long_mode;
use kvm_bindings::{kvm_fpu, kvm_msr_entry, CpuId, Msrs};
use kvm_ioctls::VcpuFd;
use vm_memory::GuestMemoryMmap;

const MSR_IA32_SYSENTER_CS: u32 = 0x174;
const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
const MSR_IA32_TSC: u32 = 0x10;
const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
const MISC_ENABLE_FAST_STRING: u64 = 1;

const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 0x4;
const APIC_MODE_EXTINT: u32 = 0x7;

/// Sets the vCPU's CPUID: KVM's supported set, with this vCPU's APIC ID and CPU count; returns
/// what it set.
pub fn set_cpuid(vcpu: &VcpuFd, supported: &CpuId, index: u8, count: u8) -> Result<CpuId, String> {
    let mut cpuid = supported.clone();
    for e in cpuid.as_mut_slice() {
        match e.function {
            1 => {
                e.ebx = (e.ebx & 0x00ff_ffff) | ((index as u32) << 24);
                e.ebx = (e.ebx & 0xff00_ffff) | ((count as u32) << 16);
                e.ecx |= 1 << 31; // hypervisor present
                if count > 1 {
                    e.edx |= 1 << 28; // HTT: the count field is valid
                }
            }
            0xb | 0x1f => e.edx = index as u32, // x2APIC ID
            _ => {}
        }
    }
    vcpu.set_cpuid2(&cpuid)
        .map_err(|e| format!("KVM_SET_CPUID2: {e}"))?;
    Ok(cpuid)
}

fn set_msrs(vcpu: &VcpuFd) -> Result<(), String> {
    let entry = |index, data| kvm_msr_entry {
        index,
        data,
        ..Default::default()
    };
    let entries = [
        entry(MSR_IA32_SYSENTER_CS, 0),
        entry(MSR_IA32_SYSENTER_ESP, 0),
        entry(MSR_IA32_SYSENTER_EIP, 0),
        entry(MSR_STAR, 0),
        entry(MSR_CSTAR, 0),
        entry(MSR_KERNEL_GS_BASE, 0),
        entry(MSR_SYSCALL_MASK, 0),
        entry(MSR_LSTAR, 0),
        entry(MSR_IA32_TSC, 0),
        entry(MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
    ];
    let msrs = Msrs::from_entries(&entries).map_err(|e| format!("MSR list: {e:?}"))?;
    let n = vcpu
        .set_msrs(&msrs)
        .map_err(|e| format!("KVM_SET_MSRS: {e}"))?;
    if n != entries.len() {
        return Err(format!(
            "KVM_SET_MSRS set {n} of {} boot MSRs",
            entries.len()
        ));
    }
    Ok(())
}

/// LINT0 delivers the PIC's interrupts (ExtINT), LINT1 NMIs: what a PC's firmware leaves.
fn set_lint(vcpu: &VcpuFd) -> Result<(), String> {
    let mut lapic = vcpu
        .get_lapic()
        .map_err(|e| format!("KVM_GET_LAPIC: {e}"))?;
    let mut set = |reg: usize, mode: u32| {
        let bytes: [u8; 4] = lapic.regs[reg..reg + 4]
            .iter()
            .map(|b| *b as u8)
            .collect::<Vec<u8>>()
            .try_into()
            .unwrap();
        let v = u32::from_le_bytes(bytes);
        let v = (v & !0x700) | (mode << 8);
        for (i, b) in v.to_le_bytes().iter().enumerate() {
            lapic.regs[reg + i] = *b as _;
        }
    };
    set(APIC_LVT0, APIC_MODE_EXTINT);
    set(APIC_LVT1, APIC_MODE_NMI);
    vcpu.set_lapic(&lapic)
        .map_err(|e| format!("KVM_SET_LAPIC: {e}"))
}

/// Boot state for vCPU `index`: 64-bit mode, paging on, RIP at the kernel entry (BSP only).
/// Returns the CPUID it gave the vCPU.
pub fn configure(
    vcpu: &VcpuFd,
    mem: &GuestMemoryMmap,
    entry: u64,
    supported: &CpuId,
    index: u8,
    count: u8,
) -> Result<CpuId, String> {
    let cpuid = set_cpuid(vcpu, supported, index, count)?;
    set_msrs(vcpu)?;
    set_lint(vcpu)?;
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu)
        .map_err(|e| format!("KVM_SET_FPU: {e}"))?;
    if index != 0 {
        return Ok(cpuid); // application processors wait for the kernel's INIT/SIPI
    }
    long_mode::write_gdt(mem, GDT)?;
    long_mode::write_page_tables(mem, PML4, PDPT, PD, 1)?;
    let mut sregs = vcpu
        .get_sregs()
        .map_err(|e| format!("KVM_GET_SREGS: {e}"))?;
    long_mode::set_long_mode(&mut sregs, GDT, IDT, 0, PML4);
    vcpu.set_sregs(&sregs)
        .map_err(|e| format!("KVM_SET_SREGS: {e}"))?;
    let mut regs = vcpu.get_regs().map_err(|e| format!("KVM_GET_REGS: {e}"))?;
    regs.rflags = 0x2;
    regs.rip = entry;
    regs.rsp = BOOT_STACK;
    regs.rbp = BOOT_STACK;
    regs.rsi = ZERO_PAGE;
    vcpu.set_regs(&regs)
        .map_err(|e| format!("KVM_SET_REGS: {e}"))?;
    Ok(cpuid)
}
