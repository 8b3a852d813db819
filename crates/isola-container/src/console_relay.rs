//! The host side of `-t`: the container's pty master is copied to isola's stdout, isola's stdin
//! (with `-i`) to the master; the host terminal goes raw meanwhile and the window size follows.

use nix::poll::{PollFd, PollFlags};
use nix::sys::termios::{self, SetArg, Termios};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

pub struct ConsoleRelay {
    master: std::fs::File,
    interactive: bool,
    stdin_open: bool,
    saved: Option<Termios>,
}

fn stdin() -> BorrowedFd<'static> {
    // SAFETY: fd 0 stays open for the life of the process.
    unsafe { BorrowedFd::borrow_raw(0) }
}

fn set_nonblocking(fd: i32) {
    // SAFETY: fcntl flag manipulation on a descriptor we hold.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

impl ConsoleRelay {
    pub fn new(master: OwnedFd, interactive: bool) -> io::Result<ConsoleRelay> {
        set_nonblocking(master.as_raw_fd());
        let saved = if interactive && nix::unistd::isatty(0).unwrap_or(false) {
            let original = termios::tcgetattr(stdin())?;
            let mut raw = original.clone();
            termios::cfmakeraw(&mut raw);
            termios::tcsetattr(stdin(), SetArg::TCSANOW, &raw)?;
            Some(original)
        } else {
            None
        };
        let relay = ConsoleRelay {
            master: std::fs::File::from(master),
            interactive,
            stdin_open: interactive,
            saved,
        };
        relay.copy_window_size();
        Ok(relay)
    }

    /// Gives the pty the size of isola's own terminal (stdin's, else stdout's).
    pub fn copy_window_size(&self) {
        // SAFETY: winsize is a plain struct; TIOCGWINSZ/TIOCSWINSZ read and write it.
        unsafe {
            let mut ws: libc::winsize = std::mem::zeroed();
            if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0
                || libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) == 0
            {
                libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
            }
        }
    }

    pub fn poll_fds(&self) -> Vec<PollFd<'_>> {
        let mut v = vec![PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
        if self.interactive && self.stdin_open {
            v.push(PollFd::new(stdin(), PollFlags::POLLIN));
        }
        v
    }

    /// Moves what is ready; `ready` follows the order of `poll_fds`.
    pub fn pump(&mut self, ready: &[bool]) -> io::Result<()> {
        if ready.first().copied().unwrap_or(false) {
            self.drain();
        }
        if ready.get(1).copied().unwrap_or(false) {
            let mut buf = [0u8; 8192];
            match nix::unistd::read(0, &mut buf) {
                Ok(0) => {
                    self.stdin_open = false;
                    // End of input: the terminal's EOF character, as a typed Ctrl-D would.
                    let _ = self.master.write_all(&[4]);
                }
                Ok(n) => self.master.write_all(&buf[..n])?,
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
                Err(_) => self.stdin_open = false,
            }
        }
        Ok(())
    }

    /// Copies everything the master has to stdout (until it would block or the pty closes).
    pub fn drain(&mut self) {
        let mut buf = [0u8; 16384];
        let mut out = io::stdout().lock();
        loop {
            match self.master.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break, // EAGAIN: nothing more now; EIO: the slave side is gone
            }
        }
        let _ = out.flush();
    }
}

/// Gives the pty behind `master` the size of isola's own terminal (stdin's, else stdout's).
/// Done before the workload starts too, so its first look at the size is right.
pub fn copy_window_size_to(master: i32) {
    // SAFETY: winsize is a plain struct; TIOCGWINSZ/TIOCSWINSZ read and write it.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0
            || libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) == 0
        {
            libc::ioctl(master, libc::TIOCSWINSZ, &ws);
        }
    }
}

impl Drop for ConsoleRelay {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = termios::tcsetattr(stdin(), SetArg::TCSANOW, t);
        }
    }
}
