//! The host channel: the virtio console's one port, /dev/hvc0 in raw mode, carrying the frames
//! of `isola_guest_contract::frame` both ways. To the host: the workload's stdout and stderr,
//! then its exit status or an error. From the host: stdin (an empty frame is end of file),
//! signals to forward and the terminal's size.

use crate::setup::open_raw;
use isola_guest_contract::frame::{Decoder, Frame, ToGuest, ToHost};
use isola_guest_contract::GuestError;
use std::os::fd::{AsRawFd, RawFd};

pub struct Channel {
    hvc: std::fs::File,
    decoder: Decoder<ToGuest>,
    /// Frames that came while the workload waited for `Start`, for the relay.
    held: Vec<ToGuest>,
}

impl Channel {
    /// Opens the channel in raw mode and tells the host it may send.
    pub fn open() -> Result<Channel, String> {
        let mut ch = Channel {
            hvc: std::fs::File::from(open_raw("/dev/hvc0", libc::O_RDWR)?),
            decoder: Decoder::default(),
            held: Vec::new(),
        };
        ch.send(&ToHost::Ready);
        Ok(ch)
    }

    pub fn fd(&self) -> RawFd {
        self.hvc.as_raw_fd()
    }

    fn send(&mut self, f: &ToHost) {
        let _ = std::io::Write::write_all(&mut self.hvc, &f.encode());
    }

    pub fn stdout(&mut self, b: &[u8]) {
        self.send(&ToHost::Stdout(b.to_vec()));
    }

    pub fn stderr(&mut self, b: &[u8]) {
        self.send(&ToHost::Stderr(b.to_vec()));
    }

    /// A frame of an exec session.
    pub fn session(&mut self, f: &ToHost) {
        self.send(f);
    }

    /// The OOM killer ended the workload: said before its exit status.
    pub fn oom_killed(&mut self) {
        self.send(&ToHost::OomKilled);
    }

    pub fn error(&mut self, e: GuestError) {
        self.send(&ToHost::Error(e));
    }

    /// Tells the host the workload is set up, and blocks until it says `Start`. What else it
    /// sends meanwhile is held for the relay.
    pub fn wait_for_start(&mut self) {
        self.send(&ToHost::Created);
        loop {
            let mut fds = [libc::pollfd {
                fd: self.hvc.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            // SAFETY: poll on one descriptor we own.
            unsafe { libc::poll(fds.as_mut_ptr(), 1, -1) };
            for f in self.receive() {
                match f {
                    ToGuest::Start => return,
                    // Nothing runs yet: the workload starts at `Start`.
                    ToGuest::ListProcesses { session } => self.send(&ToHost::Processes {
                        session,
                        list: Vec::new(),
                    }),
                    other => self.held.push(other),
                }
            }
        }
    }

    pub fn take_held(&mut self) -> Vec<ToGuest> {
        std::mem::take(&mut self.held)
    }

    /// The exit status, last; waits until the host has every byte.
    pub fn exit(&mut self, code: i32) {
        self.send(&ToHost::Exit(code));
        // SAFETY: tcdrain on the descriptor we own.
        unsafe { libc::tcdrain(self.hvc.as_raw_fd()) };
    }

    /// Reads what the host sent (call when the descriptor is readable); returns complete
    /// frames. A corrupt stream ends input: it is reported as end of file.
    pub fn receive(&mut self) -> Vec<ToGuest> {
        let mut buf = [0u8; 16384];
        // SAFETY: read into a local buffer from the descriptor we own.
        let n = unsafe { libc::read(self.hvc.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        let (mut frames, corrupt) = self.decoder.feed(&buf[..n.max(0) as usize]);
        if corrupt.is_some() {
            frames.push(ToGuest::StdinEof);
        }
        frames
    }
}
