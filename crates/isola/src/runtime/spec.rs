//! `spec`: a starting config.json in a bundle directory, as `runc spec` writes one (a shell on
//! a terminal, the usual namespaces, mounts and masked paths), to be edited.

use super::{Failure, Result};
use std::path::Path;

pub fn spec(bundle: &Path) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(Failure(format!(
            "File {} exists. Remove it first",
            path.display()
        )));
    }
    let mut spec = oci_spec::runtime::Spec::default();
    if let Some(p) = spec.process_mut() {
        p.set_terminal(Some(true));
    }
    spec.save(&path)
        .map_err(|e| Failure(format!("{}: {e}", path.display())))
}
