//! A long step's progress on a terminal (a VM's root disk being built): a bar on stderr from
//! the step's first news, cleared when it ends; nothing when stderr is not a terminal (logs,
//! pipes, tests) or the step had nothing to do, so a run's output stays the workload's own.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::cell::OnceCell;
use std::io::IsTerminal;

pub struct StepBar {
    what: &'static str,
    bar: OnceCell<Option<ProgressBar>>,
}

impl StepBar {
    /// A bar counting bytes, labelled `what`.
    pub fn bytes(what: &'static str) -> StepBar {
        StepBar {
            what,
            bar: OnceCell::new(),
        }
    }

    /// `done` of `total` so far.
    pub fn set(&self, done: u64, total: u64) {
        let bar = self.bar.get_or_init(|| {
            std::io::stderr().is_terminal().then(|| {
                let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix} [{bar:30}] {bytes:>9}/{total_bytes:<9} {elapsed}",
                    )
                    .expect("the template is valid")
                    .progress_chars("=> "),
                );
                bar.set_prefix(self.what);
                bar
            })
        });
        if let Some(bar) = bar {
            bar.set_length(total);
            bar.set_position(done.min(total));
        }
    }
}

impl Drop for StepBar {
    fn drop(&mut self) {
        if let Some(Some(bar)) = self.bar.get() {
            bar.finish_and_clear();
        }
    }
}
