//! The process an `exec` runs in a running container: the container's own process (its user,
//! environment, working directory, capabilities) with what the caller changed — the command,
//! more environment, another directory or user, a terminal. One reading for both command
//! lines: runc's (`runtime::exec`, without `--process`) and docker's (`commands::exec`).

use oci_spec::runtime::{Process, Spec};

/// What the caller changes.
pub struct Overrides<'a> {
    pub command: &'a [String],
    /// KEY=VALUE, replacing a variable of that name.
    pub env: &'a [String],
    pub cwd: Option<&'a str>,
    /// UID[:GID], numbers (`root` is 0).
    pub user: Option<&'a str>,
    pub tty: bool,
}

pub fn process(spec: &Spec, o: Overrides) -> Result<Process, String> {
    if o.command.is_empty() {
        return Err("exec: no command given".into());
    }
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(o.command.to_vec()));
    let mut env = p.env().clone().unwrap_or_default();
    for kv in o.env {
        if !kv.contains('=') || kv.starts_with('=') {
            return Err(format!("--env {kv:?}: expected KEY=VALUE"));
        }
        let key = kv.split('=').next().unwrap_or(kv);
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = o.cwd {
        if !cwd.starts_with('/') {
            return Err(format!("--workdir {cwd:?}: must be an absolute path"));
        }
        p.set_cwd(cwd.into());
    }
    if let Some(u) = o.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        let id = |s: &str| match s {
            "root" => Ok(0),
            _ => s
                .parse::<u32>()
                .map_err(|_| format!("--user {u:?}: expected UID[:GID], numbers (or root)")),
        };
        let mut user = p.user().clone();
        user.set_uid(id(uid)?);
        user.set_gid(id(gid)?);
        user.set_additional_gids(None);
        p.set_user(user);
    }
    p.set_terminal(Some(o.tty));
    Ok(p)
}
