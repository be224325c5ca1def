//! `engine stylize`: generates a Stylized-ImageNet-style dataset (Geirhos et al. 2018) with the AdaIN
//! stylizer; the job itself is `crate::stylize::run_stylize`.
//!
//! Usage:
//!
//! ```text
//! python3 tools/convert_adain_weights.py vgg_normalised.pth vgg_normalised.safetensors
//! python3 tools/convert_adain_weights.py decoder.pth decoder.safetensors
//! engine stylize --content imagenet/train --styles painter-by-numbers/train \
//!     --out stylized-imagenet/train --vgg vgg_normalised.safetensors \
//!     --decoder decoder.safetensors --device cuda --fp16
//! ```
//!
//! Every image under `--content` (class folders mirrored under `--out`) is resized to a shorter
//! side of 256, center-cropped to 224 and re-painted (α = 1) in the style of one image drawn from
//! `--styles` (center square resized to 224), seeded by `--seed` and the image's relative path.
//! Outputs are PNG (`--format jpeg --quality 90` for JPEG); `manifest.jsonl` (or `.csv`) in `--out`
//! lists content → style → output, `skipped.txt` the files that could not be used. Running the
//! same command again (after Ctrl-C or a crash) continues where it stopped and draws the same
//! styles. `--random-weights WIDTH` replaces the weight files by seeded random networks, for
//! testing only.
//!
//! Invariants: the options map one to one onto `StylizeConfig` (SIN defaults there); the Ctrl-C
//! handler only sets the stop flag the job reads between batches (a second Ctrl-C exits at once).

use super::stylizer_args::{precision_note, StylizerArgs};
use crate::stylize::{run_stylize, ManifestFormat, OutputFormat, StylizeConfig, StylizeOptions};
use crate::{Device, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum FormatArg {
    Png,
    Jpeg,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ManifestArg {
    Jsonl,
    Csv,
}

#[derive(Args)]
#[command(
    after_help = "Weights: without --vgg/--decoder, the copies `scripts/setup.sh \
install_adain_weights` installs (in $ENGINE_ADAIN_DIR, else .toolchain/adain); other .pth files of \
naoto0804/pytorch-AdaIN convert with `python3 tools/convert_adain_weights.py FILE.pth \
FILE.safetensors`.\n\
Rerunning the same command resumes: existing outputs are skipped, styles are drawn again the same."
)]
pub struct StylizeArgs {
    /// Content images (e.g. ImageNet's train/); sub-folders are searched and mirrored under --out.
    #[arg(long)]
    content: PathBuf,
    /// Style images drawn from at random (e.g. Kaggle's Painter by Numbers train/).
    #[arg(long)]
    styles: PathBuf,
    /// Output folder: stylized images, manifest.jsonl (or .csv) and skipped.txt.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    stylizer: StylizerArgs,
    /// Seeds the style drawn for each image (together with its relative path).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Style strength: 1 = full style, 0 = the content reconstructed.
    #[arg(long, default_value_t = 1.0)]
    alpha: f64,
    /// Keep the content's colours (CORAL colour transfer onto each style).
    #[arg(long)]
    preserve_color: bool,
    /// Content: shorter side resized to this many pixels (0 = keep the original size).
    #[arg(long, default_value_t = 256)]
    content_size: usize,
    /// Content: central square crop of this side after resizing (0 = no crop).
    #[arg(long, default_value_t = 224)]
    crop: usize,
    /// Style: central square resized to this side (0 = keep the original image).
    #[arg(long, default_value_t = 224)]
    style_size: usize,
    /// Content and style images whose shorter side is below this are skipped (listed in
    /// skipped.txt).
    #[arg(long, default_value_t = 32)]
    min_side: usize,
    /// Output image format (the extension becomes .png or .jpg).
    #[arg(long, value_enum, default_value = "png")]
    format: FormatArg,
    /// JPEG quality (1–100) with --format jpeg.
    #[arg(long, default_value_t = 90)]
    quality: u8,
    /// Manifest format.
    #[arg(long, value_enum, default_value = "jsonl")]
    manifest: ManifestArg,
    /// Images per stylizer call (default 8 on CUDA, 2 on the CPU).
    #[arg(long)]
    batch_size: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn config(a: &StylizeArgs, dev: Device) -> StylizeConfig {
    let mut c = StylizeConfig::new(&a.content, &a.styles, &a.out);
    c.seed = a.seed;
    c.alpha = a.alpha;
    c.preserve_color = a.preserve_color;
    c.content_size = a.content_size;
    c.crop = a.crop;
    c.style_size = a.style_size;
    c.min_side = a.min_side;
    c.format = match a.format {
        FormatArg::Png => OutputFormat::Png,
        FormatArg::Jpeg => OutputFormat::Jpeg(a.quality),
    };
    c.manifest = match a.manifest {
        ManifestArg::Jsonl => ManifestFormat::Jsonl,
        ManifestArg::Csv => ManifestFormat::Csv,
    };
    c.batch_size = a.batch_size.unwrap_or(if dev.is_cpu() { 2 } else { 8 });
    c
}

pub fn run_stylize_cmd(a: StylizeArgs) -> Result<()> {
    let (dev, dtype) = a.stylizer.placement()?;
    let cfg = config(&a, dev);
    cfg.validate()?;
    let stylizer = a.stylizer.source(a.seed)?.load(dtype, dev)?;
    eprintln!(
        "stylizing {} with styles from {} → {} on {dev}{}, batch {}, α {}{}, seed {}",
        cfg.content_dir.display(),
        cfg.styles_dir.display(),
        cfg.out_dir.display(),
        precision_note(dtype),
        cfg.batch_size,
        cfg.alpha,
        if cfg.preserve_color {
            ", colours preserved"
        } else {
            ""
        },
        cfg.seed
    );
    crate::interrupt::install();
    let opts = StylizeOptions {
        show_progress: !a.quiet,
        stop: Some(crate::interrupt::flag()),
        stop_after_batches: None,
    };
    let r = run_stylize(&cfg, &stylizer, dev, &opts)?;
    if r.interrupted {
        eprintln!(
            "interrupted after {} images; run the same command again to continue",
            r.done
        );
    }
    let bad = r.skipped_bad.len() + r.excluded_styles.len();
    println!(
        "done {}, skipped existing {}, skipped bad {}{}, {:.2} images/s ({:.1}s); manifest {}{}",
        r.done,
        r.skipped_existing,
        r.skipped_bad.len(),
        if r.excluded_styles.is_empty() {
            String::new()
        } else {
            format!(" (+{} styles excluded)", r.excluded_styles.len())
        },
        r.images_per_s,
        r.seconds,
        r.manifest.display(),
        if bad > 0 {
            format!(", skipped files in {}", r.skipped_file.display())
        } else {
            String::new()
        }
    );
    Ok(())
}
