//! `isola bundle IMAGE DIR [CMD...]`: a standalone OCI runtime bundle (its own copy of the rootfs
//! and a config.json) that any OCI runtime can run — `runc run -b DIR` runs exactly what
//! `isola run` would.

use crate::cli::BundleArgs;
use crate::commands::run::{image_and_rootfs, network_request, settings, NetworkRequest};
use crate::paths::Paths;
use anyhow::{bail, Context, Result};
use isola_inroot::Root;
use isola_oci::bundle::{runtime_spec, write_config, Network};
use isola_oci::unpack::apply_layer_blob;
use std::path::Path;

pub fn bundle(paths: &Paths, a: BundleArgs) -> Result<i32> {
    let dir = Path::new(&a.dir);
    if dir.exists() {
        bail!("{}: already exists", dir.display());
    }
    // A bundle is for any OCI runtime, which makes no isola network: none unless asked.
    let network = match network_request(&a.process, NetworkRequest::None) {
        NetworkRequest::None => Network::None,
        NetworkRequest::Host => Network::Host,
        NetworkRequest::Named(name) => {
            bail!("--network {name}: a bundle cannot join a network (isola run can); give none or host")
        }
    };
    let s = settings(
        &a.process,
        &a.command,
        "isola",
        a.tty,
        crate::limits::CpuRange::Host,
        network,
    )?;
    let (store, image, lower) = image_and_rootfs(paths, &a.image)?;
    let result = (|| -> Result<()> {
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&rootfs).with_context(|| rootfs.display().to_string())?;
        let root = Root::open(&rootfs).with_context(|| rootfs.display().to_string())?;
        for (layer, diff) in image
            .layer_digests()?
            .iter()
            .zip(image.config.rootfs().diff_ids())
        {
            apply_layer_blob(&store, layer, &diff.parse()?, &root)?;
        }
        let spec = runtime_spec(&image, &lower, &s)?;
        write_config(dir, &spec)?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(dir);
        return Err(e);
    }
    println!("{}", dir.display());
    Ok(0)
}
