//! `--init`: isola's tiny init as the workload's PID 1, at both levels — guest init's binary,
//! which, started as `/dev/init -- CMD...`, runs CMD, passes signals on to it, reaps orphans
//! and exits with CMD's status (guest/init's `tiny_init`). A container gets the host's copy
//! bound read-only at `TINY_INIT`; a VM binds its own (guest init is that binary).

use anyhow::{bail, Result};
use isola_process::tiny_init::PATH as TINY_INIT;
use oci_spec::runtime::{Mount, Spec};
use std::path::PathBuf;

/// The bind of the tiny init into the workload's root (`guest_dir`: isola's guest artifacts).
pub fn mount(guest_dir: PathBuf) -> Result<Mount> {
    let source = guest_dir.join("init");
    if !source.is_file() {
        bail!(
            "--init: isola's init ({}) is missing (it is built with the guest artifacts; see `isola doctor`)",
            source.display()
        );
    }
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(TINY_INIT));
    m.set_typ(Some("bind".into()));
    m.set_source(Some(source));
    m.set_options(Some(
        ["bind", "ro", "nosuid", "nodev", "rprivate"]
            .map(String::from)
            .to_vec(),
    ));
    Ok(m)
}

/// The process runs under the tiny init: `TINY_INIT -- ARGS...`.
pub fn wrap(spec: &mut Spec) {
    if let Some(p) = spec.process_mut() {
        let mut args = vec![TINY_INIT.to_string(), "--".to_string()];
        args.extend(p.args().clone().unwrap_or_default());
        p.set_args(Some(args));
    }
}

/// `isola compare`'s probe runs instead of the command: the same binary, `TINY_INIT --probe`.
pub fn probe(spec: &mut Spec) {
    if let Some(p) = spec.process_mut() {
        p.set_args(Some(vec![TINY_INIT.to_string(), "--probe".to_string()]));
    }
}
