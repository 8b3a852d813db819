//! Finding and starting the workload, with docker's exit codes for what can go wrong:
//! 127 when the command is not found, 126 when it is found but cannot be executed.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub const NOT_FOUND: i32 = 127;
pub const NOT_EXECUTABLE: i32 = 126;

/// A failed lookup or exec: docker's exit code and its message.
pub struct ExecFailure {
    pub code: i32,
    pub message: String,
}

fn env_path(env: &[String]) -> &str {
    env.iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
}

fn is_executable(p: &Path) -> bool {
    let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access(2) reads a NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

/// Resolves `cmd` against the container's PATH, as execvp would, but telling "not found" from
/// "found but not executable".
pub fn resolve(cmd: &str, env: &[String]) -> Result<PathBuf, ExecFailure> {
    if cmd.contains('/') {
        return Ok(PathBuf::from(cmd));
    }
    let mut not_exec = None;
    for dir in env_path(env).split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(cmd);
        match std::fs::metadata(&candidate) {
            Ok(m) if m.is_file() => {
                if m.permissions().mode() & 0o111 != 0 && is_executable(&candidate) {
                    return Ok(candidate);
                }
                not_exec.get_or_insert(candidate);
            }
            _ => {}
        }
    }
    match not_exec {
        Some(p) => Err(ExecFailure {
            code: NOT_EXECUTABLE,
            message: format!("exec: {:?}: permission denied", p.display().to_string()),
        }),
        None => Err(ExecFailure {
            code: NOT_FOUND,
            message: format!("exec: {cmd:?}: executable file not found in $PATH"),
        }),
    }
}

/// execve; returns only on failure. The tiny init (`--init`) starts with the signals it waits
/// for blocked (see `tiny_init`); everything else with the mask its caller set (empty).
pub fn exec(path: &Path, args: &[String], env: &[String]) -> ExecFailure {
    let to_c = |s: &str| CString::new(s).unwrap_or_default();
    let Ok(cpath) = CString::new(path.as_os_str().as_bytes()) else {
        return ExecFailure {
            code: NOT_FOUND,
            message: "exec: NUL in command".into(),
        };
    };
    let cargs: Vec<CString> = args.iter().map(|a| to_c(a)).collect();
    let cenv: Vec<CString> = env.iter().map(|e| to_c(e)).collect();
    if crate::tiny_init::is_tiny_init(args) {
        let set = crate::tiny_init::waited_set();
        // SAFETY: sigprocmask of this (single-threaded, about to exec) process with a set
        // initialised above.
        unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    }
    let err = nix::unistd::execve(&cpath, &cargs, &cenv).unwrap_err();
    let code = match err {
        nix::errno::Errno::ENOENT => NOT_FOUND,
        _ => NOT_EXECUTABLE,
    };
    let what = match err {
        nix::errno::Errno::ENOENT => "no such file or directory".to_string(),
        nix::errno::Errno::EACCES => "permission denied".to_string(),
        e => e.desc().to_lowercase(),
    };
    ExecFailure {
        code,
        message: format!("exec: {:?}: {what}", path.display().to_string()),
    }
}
