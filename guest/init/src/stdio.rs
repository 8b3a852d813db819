//! A process's stdio in the guest, the workload's and an exec session's alike: two pipes init
//! reads (stdout, stderr) and, with stdin, one it writes (else the process reads /dev/null);
//! or, with a terminal, a pty whose slave is all three and whose master init relays.

use crate::process::{open_pty, pipe};
use libc::c_int;

pub struct ProcessStdio {
    /// With a terminal: the pty, (master, slave).
    pub pty: Option<(c_int, c_int)>,
    /// The process's ends: stdin, stdout, stderr (the slave three times with a pty).
    theirs: [c_int; 3],
    /// Init's ends of stdout and stderr (-1 with a pty: the master carries both).
    pub out_r: c_int,
    pub err_r: c_int,
    /// Where its stdin goes (a copy of the master with a pty), if it takes stdin.
    pub in_w: Option<c_int>,
}

impl ProcessStdio {
    pub fn open(
        terminal: bool,
        size: Option<(u16, u16)>,
        with_stdin: bool,
    ) -> Result<ProcessStdio, String> {
        let pty = if terminal {
            Some(open_pty(size)?)
        } else {
            None
        };
        let (out_r, out_w, err_r, err_w) = match pty {
            Some((_, slave)) => (-1, slave, -1, slave),
            None => {
                let (out_r, out_w) = pipe()?;
                let (err_r, err_w) = pipe()?;
                (out_r, out_w, err_r, err_w)
            }
        };
        let (in_r, in_w) = match (pty, with_stdin) {
            // SAFETY: a close-on-exec copy of the master we own, so closing the writer leaves
            // the reader open and the process inherits neither.
            (Some((master, slave)), true) => (
                slave,
                Some(unsafe { libc::fcntl(master, libc::F_DUPFD_CLOEXEC, 0) }),
            ),
            (Some((_, slave)), false) => (slave, None),
            (None, true) => {
                let (r, w) = pipe()?;
                (r, Some(w))
            }
            (None, false) => {
                // SAFETY: open(2) of a NUL-terminated path.
                let null =
                    unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
                if null < 0 {
                    return Err(format!("/dev/null: {}", std::io::Error::last_os_error()));
                }
                (null, None)
            }
        };
        Ok(ProcessStdio {
            pty,
            theirs: [in_r, out_w, err_w],
            out_r,
            err_r,
            in_w,
        })
    }

    /// In the forked child: its own session, the pty as its controlling terminal (as with
    /// `docker run -t`), and its ends as descriptors 0, 1 and 2. Only async-signal-safe calls.
    pub fn install(&self) {
        // SAFETY: setsid, ioctl(TIOCSCTTY) and dup2 on descriptors this process owns; none
        // takes a pointer.
        unsafe {
            libc::setsid();
            if self.pty.is_some() {
                libc::ioctl(self.theirs[1], libc::TIOCSCTTY, 0);
            }
            for (target, fd) in self.theirs.iter().enumerate() {
                libc::dup2(*fd, target as c_int);
            }
        }
    }

    /// In init once the process is forked: closes its ends (so end of file comes when it
    /// closes them, and a write to its stdin fails once it is gone); stdin's writer stops
    /// blocking the relay.
    pub fn close_theirs(&self) {
        let mut theirs = self.theirs.to_vec();
        theirs.sort_unstable();
        theirs.dedup();
        for fd in theirs {
            // SAFETY: each a descriptor init owns, closed once (the pty slave may be all three).
            unsafe { libc::close(fd) };
        }
        if let Some(w) = self.in_w {
            // SAFETY: fcntl on the descriptor init owns.
            unsafe { libc::fcntl(w, libc::F_SETFL, libc::O_NONBLOCK) };
        }
    }
}
