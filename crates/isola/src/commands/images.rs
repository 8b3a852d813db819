//! `isola import`, `isola images`, `isola rmi` (which drops the image's unpacked rootfs and
//! VM disk once no tag needs them).

use crate::cli::ImportArgs;
use crate::paths::Paths;
use crate::records;
use anyhow::{bail, Context, Result};
use isola_oci::import::{import as import_image, ConfigOverrides};
use isola_oci::rootfs::chain_id;
use isola_oci::store::{split_tag, Damaged};
use isola_oci::{Reference, Store};

/// `--cmd '["a","b"]'` or `--cmd 'a b'`.
fn words(flag: &str, v: &str) -> Result<Vec<String>> {
    if v.trim_start().starts_with('[') {
        serde_json::from_str(v)
            .with_context(|| format!("{flag} {v:?}: not a JSON array of strings"))
    } else {
        let w: Vec<String> = v.split_whitespace().map(String::from).collect();
        if w.is_empty() {
            bail!("{flag} is empty");
        }
        Ok(w)
    }
}

pub fn import(paths: &Paths, a: ImportArgs) -> Result<i32> {
    let reference: Reference = a.name.parse()?;
    if reference.digest.is_some() {
        bail!("{}: import needs NAME[:TAG], not a digest", a.name);
    }
    let overrides = ConfigOverrides {
        cmd: a.cmd.as_deref().map(|c| words("--cmd", c)).transpose()?,
        entrypoint: a
            .entrypoint
            .as_deref()
            .map(|c| words("--entrypoint", c))
            .transpose()?,
        env: a.env.clone(),
        workdir: a.workdir.clone(),
        user: a.user.clone(),
    };
    let store = Store::open(paths.images())?;
    let imported = import_image(&store, &a.source, &reference, &overrides)?;
    println!(
        "{} {}",
        imported.reference.tagged(),
        imported.manifest_digest
    );
    Ok(0)
}

pub fn human(bytes: u64) -> String {
    const UNITS: &[&str] = &["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.3}{}", UNITS[i]).replace(".000", "")
    }
}

pub fn images(paths: &Paths) -> Result<i32> {
    let store = Store::open(paths.images())?;
    let listing = store.images()?;
    warn_damaged(&listing.damaged);
    let rows: Vec<[String; 4]> = listing
        .images
        .into_iter()
        .map(|i| {
            [
                i.name.clone(),
                i.tag.clone(),
                i.manifest_digest.to_string(),
                human(i.size()),
            ]
        })
        .collect();
    print_table(&["NAME", "TAG", "DIGEST", "SIZE"], &rows);
    Ok(0)
}

/// One stderr line per image that cannot be read, naming it and what is wrong (the blob).
pub fn warn_damaged(damaged: &[Damaged]) {
    for d in damaged {
        eprintln!(
            "isola: warning: image {} is damaged, skipped (`isola rmi {}` removes it): {}",
            d.tag, d.tag, d.error
        );
    }
}

/// Says that a deleter waits for imports and pulls to finish.
pub fn waiting_for_writers() {
    eprintln!("isola: waiting for an import or pull into this store to finish");
}

pub fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

pub fn rmi(paths: &Paths, image: &str) -> Result<i32> {
    let reference: Reference = image.parse()?;
    let store = Store::open(paths.images())?;
    let deleting = store.lock_deleting(waiting_for_writers)?;
    let (tagged, desc) = store.find(&reference)?;
    if let Some(r) = records::list(paths).iter().find(|r| r.image == tagged) {
        bail!(
            "image {tagged} is used by container {} ({}): remove it first with `isola rm {}`",
            &r.id[..12],
            r.name,
            r.name
        );
    }
    // A damaged image is removed all the same; only its rootfs cannot be found without its
    // config, and is left to `isola image prune`.
    let (name, tag) = split_tag(&tagged);
    let chain = match store.load_image(name.to_string(), tag.to_string(), &desc) {
        Ok(img) => Some(chain_id(&img)?),
        Err(e) => {
            eprintln!(
                "isola: warning: image {tagged} is damaged ({e}); removing its tag and blobs"
            );
            None
        }
    };
    store.untag(&deleting, &tagged)?;
    // Drop the unpacked rootfs unless another tag still builds the same filesystem.
    if let Some(chain) = chain {
        let listing = store.images()?;
        let still_used = listing
            .images
            .iter()
            .any(|i| chain_id(i).ok().as_ref() == Some(&chain));
        if !still_used {
            paths.rootfs().remove(&chain)?;
            let disk = paths.vm_images().join(format!("{}.ext4", chain.hex()));
            match std::fs::remove_file(&disk) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| disk.display().to_string())
                }
                _ => {}
            }
        }
    }
    println!("Untagged: {tagged}");
    Ok(0)
}
