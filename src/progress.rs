//! One progress-bar style for every long stage (hidden automatically when stderr is no terminal).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps labelled `label`.
pub fn stage_bar(label: &str, len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{prefix:28} {bar:30} {pos}/{len} {elapsed}<{eta} {msg}") {
        bar.set_style(style);
    }
    bar.set_prefix(label.to_string());
    bar
}
