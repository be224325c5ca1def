//! Progress bars for the long jobs (the training loops, stylization): one look everywhere — a
//! prefix, a 30-column bar, a counter, elapsed<eta and a message — drawn by indicatif on stderr, or
//! hidden (`--quiet`, tests), so that a job's code is the same either way.

use indicatif::{ProgressBar, ProgressStyle};
use std::borrow::Cow;

/// A bar over `total` units (0: the job sets the length later), labelled `prefix`. `counter` is the
/// indicatif template between the bar and the times: `"{pos}/{len}"`, `"it {pos}/{len}"`, or
/// `"{pos}/{len} {per_sec}"` with a rate.
pub fn bar(
    show: bool,
    total: u64,
    prefix: impl Into<Cow<'static, str>>,
    counter: &str,
) -> ProgressBar {
    let pb = if show {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{{prefix}} [{{bar:30}}] {counter} {{elapsed}}<{{eta}} {{msg}}"
        ))
        .expect("a valid progress template")
        .progress_chars("=> "),
    );
    pb.set_prefix(prefix);
    pb
}
