//! A guest init that does nothing but say it started and reset the machine: the trivial
//! workload tests/bench/vm boots under every VMM (isola, Firecracker, QEMU) to time the VMM and
//! the kernel alone. As PID 1 it writes isola's boot-timer phase "init start" to port 0x80
//! (isola's boot timer; QEMU's debug console in the benchmark), a record separator (0x1e) to
//! COM1's data port (a mark any VMM's serial console shows, and no VMM's own log line has —
//! Firecracker's logs on the same stdout hold `@`), then reboots — an i8042 reset with `reboot=k`, a triple
//! fault with `reboot=t`.

use std::arch::asm;

/// isola's boot-timer port and the phase it records first (isola-guest-contract's boot.rs).
const BOOT_TIMER_PORT: u16 = 0x80;
const INIT_START: u8 = 2;
/// COM1's transmit register.
const COM1: u16 = 0x3f8;

/// Writes `value` to I/O port `port`.
///
/// # Safety
/// The caller has I/O permission for the port (iopl/ioperm) and the port is one whose write
/// has no effect on memory this process uses.
unsafe fn outb(port: u16, value: u8) {
    // SAFETY: as the function's contract says.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack)) };
}

fn main() {
    // SAFETY: iopl(3) only changes this process's I/O privilege (PID 1 has CAP_SYS_RAWIO), and
    // the ports are written only once it succeeded; they are a boot timer and a serial port,
    // neither touches memory. sync and reboot take no pointers.
    unsafe {
        if libc::iopl(3) == 0 {
            outb(BOOT_TIMER_PORT, INIT_START);
            outb(COM1, 0x1e);
            outb(COM1, b'\n');
        }
        libc::sync();
        libc::reboot(libc::RB_AUTOBOOT);
    }
    // Not reached unless reboot failed; PID 1 exiting panics the kernel (panic=-1 resets too).
    std::process::exit(1);
}
