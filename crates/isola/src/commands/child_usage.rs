//! Waiting for a child this isola started, with what it used: wait4's rusage, which covers the
//! child and everything it reaped (a container's init, a VM's VMM). `compare` and `bench`
//! measure their runs this way.

use std::os::unix::process::ExitStatusExt;

pub struct Used {
    /// docker's status: the exit code, or 128 + the signal that ended it.
    pub code: i32,
    /// The largest resident set among the child and what it reaped.
    pub maxrss_kib: i64,
    /// User and system time of the child and what it reaped.
    pub cpu_ms: f64,
}

/// Reaps `child` (its pipes already read) and says what it used.
pub fn wait(child: std::process::Child) -> std::io::Result<Used> {
    let mut status = 0;
    // SAFETY: rusage is plain data, for which zeroes are valid; wait4 of our own child fills it
    // and the status.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    if reaped < 0 {
        return Err(std::io::Error::last_os_error());
    }
    std::mem::forget(child); // reaped above: its Drop has nothing left to do
    let st = std::process::ExitStatus::from_raw(status);
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    Ok(Used {
        code: st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)),
        maxrss_kib: usage.ru_maxrss,
        cpu_ms: ms(usage.ru_utime) + ms(usage.ru_stime),
    })
}
