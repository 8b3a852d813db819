//! Devices on I/O ports: the 8250 UART (the kernel console), the i8042 (for guest reboot =
//! VM exit), and the boot timer.

pub mod boot_timer;
pub mod i8042;
pub mod serial;

use vmm_sys_util::eventfd::EventFd;

/// An eventfd as a vm-superio interrupt/reset line.
pub struct EventFdTrigger(pub EventFd);

impl vm_superio::Trigger for EventFdTrigger {
    type E = std::io::Error;
    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}

impl EventFdTrigger {
    pub fn new() -> std::io::Result<EventFdTrigger> {
        Ok(EventFdTrigger(EventFd::new(libc::EFD_NONBLOCK)?))
    }
}
