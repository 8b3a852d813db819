//! The i8042 keyboard controller, only for what a microVM needs from it: the guest kernel
//! (booted with `reboot=k`) resets the machine by writing 0xfe to its command port, which
//! ends the VM.

use super::EventFdTrigger;
use crate::layout::{I8042_COMMAND, I8042_DATA};
use vm_superio::I8042Device;

pub struct I8042 {
    dev: I8042Device<EventFdTrigger>,
}

impl I8042 {
    pub fn new(reset: EventFdTrigger) -> I8042 {
        I8042 {
            dev: I8042Device::new(reset),
        }
    }

    pub fn handles(port: u16) -> bool {
        port == I8042_DATA || port == I8042_COMMAND
    }

    pub fn read(&mut self, port: u16) -> u8 {
        self.dev.read((port - I8042_DATA) as u8)
    }

    /// Returns true when the guest asked for a reset.
    pub fn write(&mut self, port: u16, value: u8) -> bool {
        let _ = self.dev.write((port - I8042_DATA) as u8, value);
        port == I8042_COMMAND && value == 0xfe
    }
}
