//! isola's own terminal, for `-t` in VM isolation: its window size (sent to the guest's pty)
//! and raw mode while the VM runs (keys go to the guest's line discipline untouched).

use nix::sys::termios::{self, SetArg, Termios};
use std::os::fd::BorrowedFd;

/// (rows, columns) of isola's terminal: stdin's, else stdout's; `None` when neither is one.
pub fn window_size() -> Option<(u16, u16)> {
    for fd in [0, 1] {
        // SAFETY: winsize is plain data that TIOCGWINSZ fills.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ writes one winsize through the pointer we pass.
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 {
            return Some((ws.ws_row, ws.ws_col));
        }
    }
    None
}

fn stdin() -> BorrowedFd<'static> {
    // SAFETY: fd 0 stays open for the life of the process.
    unsafe { BorrowedFd::borrow_raw(0) }
}

/// Stdin in raw mode until dropped, when its settings come back.
pub struct RawMode(Termios);

impl RawMode {
    /// `None` when stdin is not a terminal.
    pub fn enter() -> Option<RawMode> {
        let saved = termios::tcgetattr(stdin()).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(stdin(), SetArg::TCSANOW, &self.0);
    }
}
