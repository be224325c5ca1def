//! Stylized-ImageNet generation (Geirhos et al. 2018): every image of a content tree re-painted by
//! the AdaIN `Stylizer` in the style of a painting drawn at random, written under the same relative
//! path in an output tree, with a manifest of which style each image got. `engine stylize` is the
//! command; `run_stylize` is the job, for other commands and tests. `idx_set` does the same for an
//! IDX dataset (`engine stylize-idx`), with its own invariants there.
//!
//! Invariants:
//! - Deterministic: each content image's style depends only on (seed, its relative path, the
//!   usable style files) (`files::StyleDraw`), its preprocessing is a pure function of the file
//!   (`preprocess`), so a rerun or a resumed run draws the same style for the same image whatever
//!   the order, batch or threads, and on the CPU writes the same pixels (the CPU convolutions give
//!   the same bits for an image alone or in a batch; tests/stylize_cmd.rs compares batch sizes 1–3).
//! - Resumable and crash-safe: an output that exists is never redone (counted as skipped); each
//!   output is encoded in memory and written with `write_atomic` (temp file, fsync, rename), and its
//!   manifest line is appended after it (`manifest`), so a crash or Ctrl-C (`StylizeOptions::stop`,
//!   checked after each batch) loses nothing finished.
//! - A content image that cannot be decoded, is smaller than `min_side`, or cannot be cropped is
//!   skipped and reported (`StylizeReport::skipped_bad`, `skipped.txt`), never fatal; style files
//!   are checked at startup (`styles`); no usable style is an error.
//! - Batches hold images of one content size and one style size (with the SIN sizes, all of them),
//!   one style per content image; the output is cropped back to the content's size (the stylizer
//!   pads to a multiple of 8).

mod files;
pub mod idx_set;
mod job;
mod manifest;
pub mod preprocess;
mod styles;
pub mod weights;

pub use files::{list_images, output_rel, ImageFile, StyleDraw};
pub use job::run_stylize;
pub use manifest::ManifestFormat;
pub use styles::StylePool;

use crate::models::Stylizer;
use crate::nn::init::Init;
use crate::nn::{named_params, Module};
use crate::{DType, Device, Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// How outputs are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputFormat {
    Png,
    /// JPEG at this quality (1–100).
    Jpeg(u8),
}

impl OutputFormat {
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Png => "png",
            OutputFormat::Jpeg(_) => "jpg",
        }
    }
}

/// A stylize job. `StylizeConfig::new` gives the Stylized-ImageNet settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StylizeConfig {
    /// Content images, recursively (class folders are mirrored under `out_dir`).
    pub content_dir: PathBuf,
    /// Style images, recursively.
    pub styles_dir: PathBuf,
    /// Outputs, the manifest and `skipped.txt`. Must not lie inside `content_dir`.
    pub out_dir: PathBuf,
    /// Seeds the style draw (with each content's relative path).
    pub seed: u64,
    /// Style strength α in [0, 1] (1 in Stylized-ImageNet).
    pub alpha: f64,
    /// Keep the content's colours (CORAL on each style image).
    pub preserve_color: bool,
    /// Content: shorter side resized to this (0: not resized).
    pub content_size: usize,
    /// Content: central square crop of this side (0: not cropped).
    pub crop: usize,
    /// Style: central square resized to this side (0: the style as it is).
    pub style_size: usize,
    /// Content and style images whose shorter side is below this are skipped.
    pub min_side: usize,
    pub format: OutputFormat,
    pub manifest: ManifestFormat,
    /// Images per stylizer call.
    pub batch_size: usize,
}

impl StylizeConfig {
    /// Stylized-ImageNet's settings: α 1, contents 256 → crop 224, styles 224, PNG, JSON lines,
    /// batch 8, seed 0, minimum side 32.
    pub fn new(
        content_dir: impl Into<PathBuf>,
        styles_dir: impl Into<PathBuf>,
        out_dir: impl Into<PathBuf>,
    ) -> StylizeConfig {
        StylizeConfig {
            content_dir: content_dir.into(),
            styles_dir: styles_dir.into(),
            out_dir: out_dir.into(),
            seed: 0,
            alpha: 1.0,
            preserve_color: false,
            content_size: 256,
            crop: 224,
            style_size: 224,
            min_side: 32,
            format: OutputFormat::Png,
            manifest: ManifestFormat::Jsonl,
            batch_size: 8,
        }
    }

    /// Checks the settings and that the folders exist, with errors that say what to do.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Msg(m));
        if !(0.0..=1.0).contains(&self.alpha) {
            return bad(format!("--alpha must be in [0, 1], got {}", self.alpha));
        }
        if self.batch_size == 0 {
            return bad("--batch-size must be at least 1".into());
        }
        if self.content_size > 0 && self.crop > self.content_size {
            return bad(format!(
                "--crop {} is larger than --content-size {}",
                self.crop, self.content_size
            ));
        }
        if let OutputFormat::Jpeg(q) = self.format {
            if !(1..=100).contains(&q) {
                return bad(format!("JPEG quality must be 1–100, got {q}"));
            }
        }
        for (dir, what, flag) in [
            (&self.content_dir, "content", "--content"),
            (&self.styles_dir, "style", "--styles"),
        ] {
            if !dir.is_dir() {
                let state = if dir.exists() {
                    "is not a folder"
                } else {
                    "does not exist"
                };
                return bad(format!(
                    "{what} folder {} {state}; {flag} takes a folder of images (sub-folders \
                     are searched too)",
                    dir.display()
                ));
            }
        }
        let content = self.content_dir.canonicalize().map_err(|e| Error::Io {
            path: self.content_dir.display().to_string(),
            source: e,
        })?;
        if let Some(out) = absolute_lenient(&self.out_dir) {
            if out.starts_with(&content) {
                return bad(format!(
                    "--out {} lies inside --content {}: its outputs would be read as content \
                     images on the next run; choose a folder outside it",
                    self.out_dir.display(),
                    self.content_dir.display()
                ));
            }
        }
        Ok(())
    }
}

/// `path` made absolute with its longest existing ancestor canonicalized (the rest may not exist
/// yet).
fn absolute_lenient(path: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(path).ok()?;
    let mut base = abs.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = base.canonicalize() {
            return Some(rest.iter().rev().fold(c, |p: PathBuf, r| p.join(r)));
        }
        rest.push(base.file_name()?.to_owned());
        base = base.parent()?;
    }
}

/// How a job runs (not part of what it produces).
#[derive(Default)]
pub struct StylizeOptions<'a> {
    /// A progress bar on stderr (with the skipped files printed above it).
    pub show_progress: bool,
    /// Set (e.g. by a Ctrl-C handler) to stop after the current batch.
    pub stop: Option<&'a AtomicBool>,
    /// Stop after this many stylizer batches (as a Ctrl-C would): for tests of resuming.
    pub stop_after_batches: Option<usize>,
}

/// A file that was not used, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

impl Skipped {
    pub fn new(path: &Path, reason: impl Into<String>) -> Skipped {
        Skipped {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// What a run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StylizeReport {
    /// Content images found.
    pub contents: usize,
    /// Style images in the draw (after the startup check).
    pub styles: usize,
    /// Outputs written by this run.
    pub done: usize,
    /// Content images whose output existed already.
    pub skipped_existing: usize,
    /// Existing outputs the manifest lacked (a crash between writing and listing), listed now.
    pub recorded: usize,
    /// Content images that could not be used.
    pub skipped_bad: Vec<Skipped>,
    /// Style files left out of the draw (at startup or when they failed to decode).
    pub excluded_styles: Vec<Skipped>,
    /// Stopped early (Ctrl-C or `stop_after_batches`); a rerun continues.
    pub interrupted: bool,
    pub seconds: f64,
    /// Outputs written per second of this run.
    pub images_per_s: f64,
    pub manifest: PathBuf,
    pub skipped_file: PathBuf,
}

/// For tests and smoke runs only: a stylizer with seeded random weights. Every conv weight is the
/// PyTorch default scaled by √6 (variance 2/fan-in, He's), so activations keep their scale through
/// both networks and the output depends on the content and style (with the default scale it is
/// nearly constant). Real weights come from `tools/convert_adain_weights.py` and `Stylizer::load`.
pub fn random_stylizer(seed: u64, width: usize, dtype: DType, device: Device) -> Result<Stylizer> {
    let s = Stylizer::new(&mut Init::new(seed, dtype, device), width)?;
    crate::no_grad(|| -> Result<()> {
        for m in [&s.encoder as &dyn Module, &s.decoder] {
            for (_, p) in named_params(m) {
                if p.tensor.rank() == 4 {
                    p.tensor.assign(&p.tensor.scale(6f64.sqrt())?)?;
                }
            }
        }
        Ok(())
    })?;
    Ok(s)
}
