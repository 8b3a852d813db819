//! An 8250 UART (vm-superio's) whose transmitted bytes go to a sink of ours, and whose
//! interrupt line is an eventfd registered with KVM as an irqfd.

use super::EventFdTrigger;
use std::io::Write;
use std::sync::{Arc, Mutex};
use vm_superio::Serial;

/// The most of the kernel log kept in memory: past twice this, the oldest bytes go, so a guest
/// writing its console in a loop cannot grow the VMM (the end of the log is what explains a
/// failure).
pub const LOG_LIMIT: usize = 1 << 20;

/// Where a UART's output goes.
#[derive(Clone)]
pub enum Sink {
    /// Collected in memory (the kernel log; the control channel).
    Buffer(Arc<Mutex<Vec<u8>>>),
    /// Written through to one of isola's own descriptors as it arrives.
    Fd(i32),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Buffer(b) => {
                let mut log = b.lock().unwrap_or_else(|p| p.into_inner());
                log.extend_from_slice(buf);
                if log.len() > 2 * LOG_LIMIT {
                    let excess = log.len() - LOG_LIMIT;
                    log.drain(..excess);
                }
                Ok(buf.len())
            }
            Sink::Fd(fd) => {
                // SAFETY: write(2) from a valid buffer to a descriptor isola owns for its lifetime.
                let n = unsafe { libc::write(*fd, buf.as_ptr().cast(), buf.len()) };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            }
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct Uart {
    pub port: u16,
    pub serial: Serial<EventFdTrigger, vm_superio::serial::NoEvents, Sink>,
}

impl Uart {
    pub fn new(port: u16, irq: EventFdTrigger, sink: Sink) -> Uart {
        Uart {
            port,
            serial: Serial::new(irq, sink),
        }
    }

    pub fn handles(&self, port: u16) -> bool {
        (self.port..self.port + 8).contains(&port)
    }

    pub fn read(&mut self, port: u16) -> u8 {
        self.serial.read((port - self.port) as u8)
    }

    pub fn write(&mut self, port: u16, value: u8) {
        // A sink that fails (a closed stdout) loses the byte; the guest goes on.
        let _ = self.serial.write((port - self.port) as u8, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_log_is_bounded_and_ends_with_the_newest_bytes() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut sink = Sink::Buffer(log.clone());
        for i in 0..(5 * LOG_LIMIT / 1000) {
            sink.write_all(format!("{i:0999}\n").as_bytes()).unwrap();
        }
        sink.write_all(b"the end\n").unwrap();
        let log = log.lock().unwrap();
        assert!(log.len() <= 2 * LOG_LIMIT, "{}", log.len());
        assert!(log.len() >= LOG_LIMIT);
        assert!(log.ends_with(b"the end\n"));
    }
}
