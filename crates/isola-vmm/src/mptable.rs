//! The MP table (Intel MultiProcessor Specification 1.4): how the guest kernel learns how many
//! CPUs there are, where the I/O APIC is and how the ISA IRQs reach it — the least a microVM
//! without ACPI needs for SMP. It sits at 0x9fc00, the last KiB of conventional memory, where
//! Linux looks for it (and outside the RAM the zero page's E820 map declares).

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// The local APICs and the I/O APIC, where KVM's in-kernel irqchip puts them.
const LAPIC_ADDR: u32 = 0xfee0_0000;
const IOAPIC_ADDR: u32 = 0xfec0_0000;
const LAPIC_VERSION: u8 = 0x14;
const IOAPIC_VERSION: u8 = 0x11;
/// ISA IRQs 0..15 are wired to I/O APIC pins 0..15.
const ISA_IRQS: u8 = 16;
/// The most CPUs the table (and isola's guest kernel, NR_CPUS) describes.
pub const MAX_CPUS: u8 = 16;

const ENTRY_PROCESSOR: u8 = 0;
const ENTRY_BUS: u8 = 1;
const ENTRY_IOAPIC: u8 = 2;
const ENTRY_IO_INTERRUPT: u8 = 3;
const ENTRY_LOCAL_INTERRUPT: u8 = 4;
const INT_TYPE_INT: u8 = 0;
const INT_TYPE_NMI: u8 = 1;
const INT_TYPE_EXTINT: u8 = 3;
const CPU_ENABLED: u8 = 1;
const CPU_BOOTSTRAP: u8 = 2;

/// The byte that makes `bytes` sum to zero (mod 256).
fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)))
}

/// The floating pointer and configuration table for `cpus` CPUs, as placed at `at`.
pub fn build(cpus: u8, at: u64) -> Result<Vec<u8>, String> {
    if cpus == 0 || cpus > MAX_CPUS {
        return Err(format!("{cpus} vCPUs: the guest supports 1 to {MAX_CPUS}"));
    }
    let ioapic_id = cpus; // the first ID after the CPUs' local APICs
    let mut entries = Vec::new();
    for id in 0..cpus {
        entries.extend_from_slice(&[ENTRY_PROCESSOR, id, LAPIC_VERSION]);
        entries.push(CPU_ENABLED | if id == 0 { CPU_BOOTSTRAP } else { 0 });
        entries.extend_from_slice(&0x600u32.to_le_bytes()); // signature: family 6
        entries.extend_from_slice(&0x201u32.to_le_bytes()); // features: FPU, APIC
        entries.extend_from_slice(&[0; 8]);
    }
    entries.extend_from_slice(&[ENTRY_BUS, 0]);
    entries.extend_from_slice(b"ISA   ");
    entries.extend_from_slice(&[ENTRY_IOAPIC, ioapic_id, IOAPIC_VERSION, 1]);
    entries.extend_from_slice(&IOAPIC_ADDR.to_le_bytes());
    for irq in 0..ISA_IRQS {
        // Polarity and trigger "conform to the bus": ISA, active high, edge.
        entries.extend_from_slice(&[
            ENTRY_IO_INTERRUPT,
            INT_TYPE_INT,
            0,
            0,
            0,
            irq,
            ioapic_id,
            irq,
        ]);
    }
    // LINT0 takes the PIC's ExtINT, LINT1 NMIs, on every local APIC (0xff).
    entries.extend_from_slice(&[ENTRY_LOCAL_INTERRUPT, INT_TYPE_EXTINT, 0, 0, 0, 0, 0xff, 0]);
    entries.extend_from_slice(&[ENTRY_LOCAL_INTERRUPT, INT_TYPE_NMI, 0, 0, 0, 0, 0xff, 1]);
    let count = u16::from(cpus) + 1 + 1 + u16::from(ISA_IRQS) + 2;

    let mut table = Vec::with_capacity(44 + entries.len());
    table.extend_from_slice(b"PCMP");
    table.extend_from_slice(&((44 + entries.len()) as u16).to_le_bytes());
    table.push(4); // specification revision 1.4
    table.push(0); // checksum, below
    table.extend_from_slice(b"ISOLA   "); // OEM ID
    table.extend_from_slice(b"MICROVM     "); // product ID
    table.extend_from_slice(&0u32.to_le_bytes()); // OEM table: none
    table.extend_from_slice(&0u16.to_le_bytes());
    table.extend_from_slice(&count.to_le_bytes());
    table.extend_from_slice(&LAPIC_ADDR.to_le_bytes());
    table.extend_from_slice(&[0, 0, 0, 0]); // extended table: none
    table.extend_from_slice(&entries);
    table[7] = checksum(&table);

    let mut fp = Vec::with_capacity(16);
    fp.extend_from_slice(b"_MP_");
    fp.extend_from_slice(&((at + 16) as u32).to_le_bytes());
    fp.extend_from_slice(&[1, 4, 0, 0, 0, 0, 0, 0]); // 1 paragraph, rev 1.4, config table
    fp[10] = checksum(&fp);

    fp.extend_from_slice(&table);
    Ok(fp)
}

/// Writes the MP table for `cpus` CPUs into guest memory at `at`.
pub fn write(mem: &GuestMemoryMmap, cpus: u8, at: u64) -> Result<(), String> {
    let bytes = build(cpus, at)?;
    mem.write_slice(&bytes, GuestAddress(at))
        .map_err(|e| format!("writing the MP table: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_to_zero_and_counts_every_cpu() {
        for cpus in [1, 2, 16] {
            let t = build(cpus, 0x9fc00).unwrap();
            assert_eq!(&t[..4], b"_MP_");
            assert_eq!(t[..16].iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
            let table = &t[16..];
            assert_eq!(&table[..4], b"PCMP");
            let len = u16::from_le_bytes([table[4], table[5]]) as usize;
            assert_eq!(len, table.len());
            assert_eq!(table.iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
            for id in 0..cpus {
                let e = &table[44 + id as usize * 20..];
                let flags = CPU_ENABLED | if id == 0 { CPU_BOOTSTRAP } else { 0 };
                assert_eq!(e[..4], [ENTRY_PROCESSOR, id, LAPIC_VERSION, flags]);
            }
            let count = u16::from_le_bytes([table[34], table[35]]);
            assert_eq!(count, u16::from(cpus) + 20);
            // The whole table fits in the last KiB of conventional memory.
            assert!(t.len() <= 1024, "{} bytes", t.len());
        }
    }

    #[test]
    fn refuses_what_the_guest_cannot_run() {
        assert!(build(0, 0x9fc00).is_err());
        assert!(build(17, 0x9fc00).is_err());
    }
}
