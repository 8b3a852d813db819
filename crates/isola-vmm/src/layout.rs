//! Where things go in guest physical memory (the classic x86 microVM layout, as Firecracker's).

/// The GDT the vCPU starts with.
pub const GDT: u64 = 0x500;
/// The (empty) IDT the vCPU starts with; the kernel installs its own.
pub const IDT: u64 = 0x520;
/// The boot stack.
pub const BOOT_STACK: u64 = 0x8ff0;
/// The zero page: Linux's `struct boot_params`.
pub const ZERO_PAGE: u64 = 0x7000;
/// Identity-mapping page tables for the first GiB: PML4, PDPT, PD.
pub const PML4: u64 = 0x9000;
pub const PDPT: u64 = 0xa000;
pub const PD: u64 = 0xb000;
/// The MP table (CPUs and the IOAPIC for the kernel's SMP bring-up).
pub const MPTABLE: u64 = 0x9fc00;
/// The kernel command line.
pub const CMDLINE: u64 = 0x20000;
pub const CMDLINE_MAX: usize = 0x10000;
/// End of conventional memory: the EBDA and BIOS area follow.
pub const EBDA_START: u64 = 0x9fc00;
/// Where the kernel is loaded (and where high memory starts).
pub const HIMEM_START: u64 = 0x10_0000;
/// Legacy I/O ports of the 8250 UARTs: COM1..COM4.
pub const COM_PORTS: [u16; 4] = [0x3f8, 0x2f8, 0x3e8, 0x2e8];
/// Their IRQs (COM1/COM3 share 4, COM2/COM4 share 3, as on a PC).
pub const COM_IRQS: [u32; 4] = [4, 3, 4, 3];
/// The i8042 keyboard controller: the guest resets the machine through it.
pub const I8042_DATA: u16 = 0x60;
pub const I8042_COMMAND: u16 = 0x64;
/// The boot timer (devices/boot_timer.rs): guest init writes a phase number here.
pub use isola_guest_contract::boot::BOOT_TIMER_PORT;
/// The first virtio-mmio device's register window and IRQ (the next ones follow).
pub const VIRTIO_MMIO_BASE: u64 = 0xd000_0000;
pub const VIRTIO_MMIO_SIZE: u64 = 0x1000;
pub const VIRTIO_FIRST_IRQ: u32 = 5;
