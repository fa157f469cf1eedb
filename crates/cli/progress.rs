//! A progress bar on stderr when it is a terminal; silent when piped.

use embgeom_geometry::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::Mutex;

/// [`Progress`] drawn with indicatif; indicatif hides it when stderr is not a terminal.
pub struct TerminalProgress {
    bar: Mutex<Option<ProgressBar>>,
    enabled: bool,
}

impl TerminalProgress {
    /// A progress reporter; `enabled = false` draws nothing.
    pub fn new(enabled: bool) -> Self {
        TerminalProgress {
            bar: Mutex::new(None),
            enabled,
        }
    }
}

impl Progress for TerminalProgress {
    fn start(&self, stage: &str, total: u64) {
        if !self.enabled {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{msg:28} [{bar:40}] {pos}/{len} tiles, eta {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(stage.to_string());
        *self.bar.lock().expect("progress lock") = Some(bar);
    }

    fn advance(&self, units: u64) {
        if let Some(bar) = self.bar.lock().expect("progress lock").as_ref() {
            bar.inc(units);
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.lock().expect("progress lock").take() {
            bar.finish_and_clear();
        }
    }
}
