//! Putting a vCPU straight into 64-bit mode: a flat GDT, identity-mapped page tables and the
//! control registers that turn paging and long mode on. Used by the KVM probe and by the
//! 64-bit Linux boot.

use kvm_bindings::{kvm_segment, kvm_sregs};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

pub const CODE_SELECTOR: u16 = 0x08;
pub const DATA_SELECTOR: u16 = 0x10;

pub fn code_segment() -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector: CODE_SELECTOR,
        type_: 0b1011, // execute/read, accessed
        present: 1,
        dpl: 0,
        db: 0,
        s: 1,
        l: 1,
        g: 1,
        ..Default::default()
    }
}

pub fn data_segment() -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector: DATA_SELECTOR,
        type_: 0b0011, // read/write, accessed
        present: 1,
        dpl: 0,
        db: 1,
        s: 1,
        l: 0,
        g: 1,
        ..Default::default()
    }
}

fn write(mem: &GuestMemoryMmap, addr: u64, bytes: &[u8]) -> Result<(), String> {
    mem.write_slice(bytes, GuestAddress(addr))
        .map_err(|e| format!("writing guest memory at {addr:#x}: {e}"))
}

/// Writes a GDT (null, 64-bit code, data) at `gdt`.
pub fn write_gdt(mem: &GuestMemoryMmap, gdt: u64) -> Result<(), String> {
    let entries: [u64; 3] = [0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff];
    write(
        mem,
        gdt,
        &entries
            .iter()
            .flat_map(|e| e.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
}

/// Identity-maps the first `gib` GiB (at most 512) with 2 MiB pages: PML4 → PDPT → `gib` PDs
/// placed from `pd` on.
pub fn write_page_tables(
    mem: &GuestMemoryMmap,
    pml4: u64,
    pdpt: u64,
    pd: u64,
    gib: u64,
) -> Result<(), String> {
    write(mem, pml4, &(pdpt | 0x3).to_le_bytes())?;
    for g in 0..gib.min(512) {
        let table = pd + g * 0x1000;
        write(mem, pdpt + g * 8, &(table | 0x3).to_le_bytes())?;
        let entries: Vec<u8> = (0..512u64)
            .flat_map(|i| (((g << 30) | (i << 21)) | 0x83).to_le_bytes())
            .collect();
        write(mem, table, &entries)?;
    }
    Ok(())
}

/// Segment, descriptor-table and control registers for 64-bit mode with paging at `pml4`.
pub fn set_long_mode(sregs: &mut kvm_sregs, gdt: u64, idt: u64, idt_limit: u16, pml4: u64) {
    sregs.cs = code_segment();
    let data = data_segment();
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.gdt.base = gdt;
    sregs.gdt.limit = 3 * 8 - 1;
    sregs.idt.base = idt;
    sregs.idt.limit = idt_limit;
    sregs.cr3 = pml4;
    sregs.cr4 = 1 << 5; // PAE
    sregs.cr0 = (1 << 31) | (1 << 4) | 1; // PG | ET | PE
    sregs.efer = (1 << 8) | (1 << 10); // LME | LMA
}
