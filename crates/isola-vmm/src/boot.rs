//! Loading Linux: the kernel (an ELF vmlinux entered at its 64-bit entry point, or a bzImage
//! entered at startup_64, 0x200 past its protected-mode code), the command line, the initramfs
//! at the top of low memory, and the zero page (`struct boot_params`) with the memory map — the
//! 64-bit Linux boot protocol (Documentation/x86/boot.rst).

use crate::explain::say;
use crate::layout::*;
use linux_loader::cmdline::Cmdline;
use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params};
use linux_loader::loader::bzimage::BzImage;
use linux_loader::loader::elf::Elf;
use linux_loader::loader::KernelLoader;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use vm_memory::{ByteValued, Bytes, GuestAddress, GuestMemoryMmap};

const E820_RAM: u32 = 1;
const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448; // "HdrS"
const KERNEL_LOADER_OTHER: u8 = 0xff;
const KERNEL_MIN_ALIGNMENT_BYTES: u32 = 0x0100_0000;

/// `boot_params` as plain bytes for guest memory.
#[derive(Clone, Copy, Default)]
#[repr(transparent)]
struct ZeroPage(boot_params);
// SAFETY: boot_params is a plain C struct of integers and arrays (bindgen output), valid for
// any bit pattern, with no references or padding-dependent invariants.
unsafe impl ByteValued for ZeroPage {}

/// What the vCPU needs to start the kernel.
pub struct Loaded {
    pub entry: u64,
}

/// Loads kernel, initramfs and command line into `mem` (of `mem_size` bytes).
pub fn load_linux(
    mem: &GuestMemoryMmap,
    mem_size: u64,
    kernel: &Path,
    initrd: Option<&[u8]>,
    cmdline: &str,
) -> Result<Loaded, String> {
    let mut file =
        File::open(kernel).map_err(|e| format!("guest kernel {}: {e}", kernel.display()))?;
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic)
        .map_err(|e| format!("guest kernel {}: {e}", kernel.display()))?;
    let is_elf = magic == *b"\x7fELF";
    let result = if is_elf {
        Elf::load(mem, None, &mut file, Some(GuestAddress(HIMEM_START)))
    } else {
        BzImage::load(mem, None, &mut file, Some(GuestAddress(HIMEM_START)))
    }
    .map_err(|e| {
        format!(
            "guest kernel {}: neither a loadable vmlinux nor a bzImage: {e}",
            kernel.display()
        )
    })?;
    // A bzImage's 64-bit entry, startup_64, is 0x200 past where its protected-mode code lands.
    let entry = result.kernel_load.0 + if is_elf { 0 } else { 0x200 };
    say(|| {
        format!(
            "guest kernel {} ({}) loaded into guest memory at {:#x}-{:#x}, 64-bit entry point {entry:#x}",
            kernel.display(),
            if is_elf { "an ELF vmlinux" } else { "a bzImage" },
            result.kernel_load.0,
            result.kernel_end
        )
    });

    let mut cl = Cmdline::new(CMDLINE_MAX).map_err(|e| format!("kernel command line: {e}"))?;
    cl.insert_str(cmdline)
        .map_err(|e| format!("kernel command line {cmdline:?}: {e}"))?;
    linux_loader::loader::load_cmdline(mem, GuestAddress(CMDLINE), &cl)
        .map_err(|e| format!("writing the kernel command line: {e}"))?;
    say(|| format!("kernel command line at {CMDLINE:#x}: {cmdline}"));

    let mut params = ZeroPage::default();
    if let Some(h) = result.setup_header {
        params.0.hdr = h; // a bzImage's own setup header, as the protocol asks
    }
    let hdr = &mut params.0.hdr;
    hdr.type_of_loader = KERNEL_LOADER_OTHER;
    hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
    hdr.header = KERNEL_HDR_MAGIC;
    hdr.cmd_line_ptr = CMDLINE as u32;
    hdr.cmdline_size = (cmdline.len() + 1) as u32;
    hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT_BYTES;

    if let Some(image) = initrd {
        // The initramfs goes at the top of memory below 4 GiB, page aligned.
        let top = mem_size.min(1 << 32);
        let addr = (top - image.len() as u64) & !0xfff;
        if addr <= result.kernel_end {
            return Err(format!(
                "the initramfs ({} bytes) does not fit in {} MiB of guest memory next to the kernel",
                image.len(),
                mem_size >> 20
            ));
        }
        mem.write_slice(image, GuestAddress(addr))
            .map_err(|e| format!("writing the initramfs: {e}"))?;
        params.0.hdr.ramdisk_image = addr as u32;
        params.0.hdr.ramdisk_size = image.len() as u32;
        say(|| {
            format!(
                "initramfs ({} KiB: guest init and what it is to run) at {addr:#x}, the top of memory",
                image.len().div_ceil(1024)
            )
        });
    }

    let e820 = [(0u64, EBDA_START), (HIMEM_START, mem_size - HIMEM_START)];
    for (i, (addr, size)) in e820.iter().enumerate() {
        params.0.e820_table[i] = boot_e820_entry {
            addr: *addr,
            size: *size,
            r#type: E820_RAM,
        };
    }
    params.0.e820_entries = e820.len() as u8;
    LinuxBootConfigurator::write_bootparams::<GuestMemoryMmap>(
        &BootParams::new::<ZeroPage>(&params, GuestAddress(ZERO_PAGE)),
        mem,
    )
    .map_err(|e| format!("writing the zero page: {e}"))?;
    say(|| {
        format!(
            "zero page (Linux's boot_params) at {ZERO_PAGE:#x}: where the command line and \
             initramfs are, and the memory map (RAM 0x0-{EBDA_START:#x} and \
             {HIMEM_START:#x}-{:#x})",
            mem_size - 1
        )
    });
    Ok(Loaded { entry })
}
