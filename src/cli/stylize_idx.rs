//! `engine stylize-idx`: a stylized copy of an IDX dataset (Fashion-MNIST), the Stylized-ImageNet
//! recipe at the size of this data; the job is `crate::stylize::idx_set::stylize_idx`.
//!
//! ```text
//! scripts/setup.sh install_style_textures
//! engine stylize-idx --styles .toolchain/styles/gimp-patterns --out runs/sfmnist
//! engine train --data runs/sfmnist ...
//! ```
//!
//! Invariants: the options map one to one onto `IdxStylizeConfig`, the weights, the device and
//! precision (together what decides the pixels, checked on a rerun) and `IdxStylizeOptions` (what
//! does not); the Ctrl-C handler only sets the stop flag the job reads between batches, and an
//! interrupted run exits with an error after saving its chunks.

use super::stylizer_args::{precision_note, StylizerArgs};
use crate::data::idx::FASHION_MNIST_DIR;
use crate::stylize::idx_set::{stylize_idx, IdxStylizeConfig, IdxStylizeOptions};
use crate::{Error, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
#[command(after_help = "The output folder holds <split>-images-idx3-ubyte, \
<split>-labels-idx1-ubyte (the labels, unchanged), <split>-styles.txt (each image's style) and \
stylize-idx.json (the settings). `engine train --data OUT` and `engine eval CKPT --data OUT` read it \
like the original.\n\
Rerunning the same command resumes (work is saved in chunks of --chunk images); other settings on \
the same --out are refused.\n\
Weights: without --vgg/--decoder, the copies `scripts/setup.sh install_adain_weights` installs. \
Style images: any folder of images; `scripts/setup.sh install_style_textures` installs 43 \
photographed textures from Debian's gimp-data in .toolchain/styles/gimp-patterns.")]
pub struct StylizeIdxArgs {
    /// Style images drawn from at random (sub-folders are searched).
    #[arg(long)]
    styles: PathBuf,
    /// Output folder for the stylized IDX files.
    #[arg(long)]
    out: PathBuf,
    /// Folder with the IDX files to stylize.
    #[arg(long, default_value = FASHION_MNIST_DIR)]
    data: PathBuf,
    /// Splits to stylize, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "train,t10k")]
    splits: Vec<String>,
    /// Side of the square the stylizer works on (multiple of 8, ≥ 16); the result is brought back
    /// to the images' own size. Larger keeps more of the shape and costs quadratically more.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Style strength: 1 = full style, 0 = the content reconstructed.
    #[arg(long, default_value_t = 1.0)]
    alpha: f64,
    /// Seeds the style drawn for each image (with its split and index).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Only the first N images of each split (smoke runs).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Images saved per chunk (an interruption loses at most one chunk).
    #[arg(long, default_value_t = 500)]
    chunk: usize,
    #[command(flatten)]
    stylizer: StylizerArgs,
    /// Images per stylizer call.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

pub fn run_stylize_idx(a: StylizeIdxArgs) -> Result<()> {
    let (dev, dtype) = a.stylizer.placement()?;
    if a.batch_size == 0 {
        return Err(Error::Msg("--batch-size must be at least 1".into()));
    }
    let source = a.stylizer.source(a.seed)?;
    let weights = source.identity()?;
    let stylizer = source.load(dtype, dev)?;
    let cfg = IdxStylizeConfig {
        data_dir: a.data,
        styles_dir: a.styles,
        out_dir: a.out,
        splits: a.splits,
        size: a.size,
        alpha: a.alpha,
        seed: a.seed,
        limit: a.limit,
        chunk: a.chunk,
        weights,
    };
    eprintln!(
        "stylizing {} ({}) with styles from {} → {} at {}² on {dev}{}, α {}, seed {}",
        cfg.data_dir.display(),
        cfg.splits.join(", "),
        cfg.styles_dir.display(),
        cfg.out_dir.display(),
        cfg.size,
        precision_note(dtype),
        cfg.alpha,
        cfg.seed
    );
    crate::interrupt::install();
    let opts = IdxStylizeOptions {
        batch_size: a.batch_size,
        show_progress: !a.quiet,
        stop: Some(crate::interrupt::flag()),
        stop_after_chunks: None,
    };
    let r = stylize_idx(&cfg, &stylizer, dtype, dev, &opts)?;
    if r.interrupted {
        // An error, so that a script running this stops here instead of reading a half set.
        return Err(Error::Msg(format!(
            "interrupted after {} images ({} kept in {}, {} splits complete); run the same \
             command again to continue",
            r.stylized,
            r.kept_in_chunks,
            cfg.out_dir.join(".partial").display(),
            r.finished_splits.len()
        )));
    }
    println!(
        "stylized {} images ({} resumed from an earlier run), {:.2} images/s ({:.1}s); {} styles{}; \
         complete splits: {}",
        r.stylized,
        r.resumed,
        r.images_per_s,
        r.seconds,
        r.styles,
        if r.excluded_styles > 0 {
            format!(" ({} left out)", r.excluded_styles)
        } else {
            String::new()
        },
        if r.finished_splits.is_empty() {
            "none".to_string()
        } else {
            r.finished_splits.join(", ")
        }
    );
    Ok(())
}
