//! How pull and push report blobs: a bar per blob when stderr is a terminal (indicatif), one
//! line per step when it is not (logs, pipes, tests), nothing with `--quiet`; on a terminal, a
//! bar for the layers unpacked too.

use crate::commands::images::human;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use isola_oci::Digest;
use std::collections::HashMap;
use std::io::IsTerminal;

pub enum BlobReport {
    Quiet,
    Lines,
    Bars {
        multi: MultiProgress,
        bars: HashMap<Digest, ProgressBar>,
    },
}

impl BlobReport {
    pub fn new(quiet: bool) -> BlobReport {
        if quiet {
            BlobReport::Quiet
        } else if std::io::stderr().is_terminal() {
            BlobReport::Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                bars: HashMap::new(),
            }
        } else {
            BlobReport::Lines
        }
    }

    /// A line above the bars.
    pub fn say(&self, text: &str) {
        match self {
            BlobReport::Quiet => {}
            BlobReport::Lines => eprintln!("{text}"),
            BlobReport::Bars { multi, .. } => {
                let _ = multi.println(text);
            }
        }
    }

    /// A blob the other side already has.
    pub fn present(&self, digest: &Digest, size: u64) {
        self.say(&format!(
            "  {} {:>8} already present",
            digest.short(),
            human(size)
        ));
    }

    /// A blob starts moving (`verb`: fetching, uploading).
    pub fn start(&mut self, digest: &Digest, size: u64, verb: &str) {
        match self {
            BlobReport::Quiet => {}
            BlobReport::Lines => eprintln!("  {} {:>8} {verb}", digest.short(), human(size)),
            BlobReport::Bars { multi, bars } => {
                let bar = multi.add(ProgressBar::new(size));
                bar.set_style(
                    ProgressStyle::with_template(
                        "  {prefix} [{bar:30}] {bytes:>9}/{total_bytes:<9} {bytes_per_sec:>11} {msg}",
                    )
                    .expect("the template is valid")
                    .progress_chars("=> "),
                );
                bar.set_prefix(digest.short().to_string());
                bar.set_message(verb.to_string());
                bars.insert(digest.clone(), bar);
            }
        }
    }

    /// `bytes` of a moving blob have gone.
    pub fn progress(&self, digest: &Digest, bytes: u64) {
        if let BlobReport::Bars { bars, .. } = self {
            if let Some(bar) = bars.get(digest) {
                bar.set_position(bytes);
            }
        }
    }

    /// A bar for unpacking `layers` layers, on a terminal (the unpacker moves it on).
    pub fn unpacking(&self, layers: usize) -> Option<ProgressBar> {
        let BlobReport::Bars { multi, .. } = self else {
            return None;
        };
        let bar = multi.add(ProgressBar::new(layers as u64));
        bar.set_style(
            ProgressStyle::with_template("  unpacking [{bar:30}] {pos}/{len} layers {msg}")
                .expect("the template is valid")
                .progress_chars("=> "),
        );
        Some(bar)
    }

    /// A blob arrived whole (and checked).
    pub fn done(&mut self, digest: &Digest) {
        match self {
            BlobReport::Quiet => {}
            BlobReport::Lines => eprintln!("  {} done", digest.short()),
            BlobReport::Bars { bars, .. } => {
                if let Some(bar) = bars.get(digest) {
                    bar.finish_with_message("done");
                }
            }
        }
    }
}

impl Drop for BlobReport {
    /// Bars left unfinished (a failed transfer) stay on screen where they stopped.
    fn drop(&mut self) {
        if let BlobReport::Bars { bars, .. } = self {
            for bar in bars.values() {
                if !bar.is_finished() {
                    bar.abandon();
                }
            }
        }
    }
}
