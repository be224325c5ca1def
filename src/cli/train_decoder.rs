//! `engine train-decoder`: trains the AdaIN decoder of the Stylized-ImageNet stylizer as Huang &
//! Belongie (2017) do (naoto0804/pytorch-AdaIN `train.py`), flags → `DecoderTrainConfig` →
//! `train_decoder::train_decoder`. With `--resume` the config comes from the run's checkpoint;
//! only the schedule flags (`--iterations`, `--lr`, `--lr-decay`, `--save-every`, `--sample-every`,
//! `--log-every`) may change it.
//!
//! Usage:
//!
//! ```text
//! python3 tools/convert_adain_weights.py vgg_normalised.pth vgg.safetensors
//! engine train-decoder --content coco/train2014 --styles wikiart/train \
//!     --vgg vgg.safetensors --out runs/adain-decoder --device cuda
//! ```
//!
//! trains for the paper's 160 000 iterations of 8 (content, style) pairs, 512 px images cropped
//! to 256, Adam lr 1e-4 decayed as lr/(1 + 5e-5·i), loss L_c + 10·L_s. The run folder gets
//! `config.json`, `metrics.jsonl` (iteration, loss_c, loss_s, total, lr, images_per_s),
//! `loss.png`, `samples/iter_XXXXXX.png` (rows of content, style, result),
//! `checkpoint.safetensors` (decoder, Adam state and run state; every `--save-every` iterations
//! and on Ctrl-C) and `decoder.safetensors`, the decoder alone under the reference `decoder.pth`
//! key names, for `Stylizer::load` / `engine stylize --decoder` or `--decoder` to continue
//! training. `engine train-decoder --resume --out runs/adain-decoder` continues exactly where the
//! run stopped. For a quick run on the CPU, shrink everything:
//! `--image-size 64 --crop 32 --batch-size 2 --iterations 200`; `--random-vgg 8` stands in for
//! `--vgg` where no converted weights exist (for testing only: the decoder learns nothing useful).

use super::RunFlags;
use crate::train_decoder::checkpoint::{checkpoint_path, read_run_state};
use crate::train_decoder::{train_decoder, DecoderTrainConfig, EncoderSource};
use crate::{Error, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct TrainDecoderArgs {
    /// Folder of content images, searched recursively (MS-COCO in the paper).
    #[arg(long, required_unless_present = "resume")]
    content: Option<PathBuf>,
    /// Folder of style images, searched recursively (WikiArt in the paper).
    #[arg(long, required_unless_present = "resume")]
    styles: Option<PathBuf>,
    /// The frozen VGG encoder: vgg_normalised.pth converted with
    /// `python3 tools/convert_adain_weights.py vgg_normalised.pth vgg.safetensors` (default: the
    /// copy `scripts/setup.sh install_adain_weights` installs, in $ENGINE_ADAIN_DIR, else
    /// .toolchain/adain).
    #[arg(long, conflicts_with = "random_vgg")]
    vgg: Option<PathBuf>,
    /// FOR TESTING ONLY: a seeded random encoder of this width instead of --vgg (64 has the real
    /// network's shape). Its features mean nothing, so neither does the decoder trained against
    /// it; it is saved as <out>/random_vgg.safetensors.
    #[arg(long, value_name = "WIDTH")]
    random_vgg: Option<usize>,
    /// Start the decoder from these weights (a converted decoder.pth or a run's
    /// decoder.safetensors) instead of a fresh seeded initialisation.
    #[arg(long)]
    decoder: Option<PathBuf>,
    /// Run folder: config.json, metrics.jsonl, loss.png, samples/, checkpoint.safetensors,
    /// decoder.safetensors.
    #[arg(long, default_value = "runs/adain-decoder")]
    out: PathBuf,
    #[command(flatten)]
    run: RunFlags,
    /// FP16 weights and activations with f32 master weights and dynamic loss scaling (for CUDA).
    #[arg(long)]
    fp16: bool,
    /// Iterations (optimiser steps) in total [default: 160000, as the paper].
    #[arg(long)]
    iterations: Option<usize>,
    /// (content, style) pairs per iteration [default: 8].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Adam's initial learning rate [default: 1e-4].
    #[arg(long)]
    lr: Option<f64>,
    /// Learning-rate decay d: iteration i uses lr/(1 + d·i) [default: 5e-5].
    #[arg(long)]
    lr_decay: Option<f64>,
    /// Weight of the content loss [default: 1].
    #[arg(long)]
    content_weight: Option<f64>,
    /// Weight of the style loss [default: 10].
    #[arg(long)]
    style_weight: Option<f64>,
    /// Images are resized so that their shorter side is this many pixels [default: 512].
    #[arg(long)]
    image_size: Option<usize>,
    /// ... then a random square of this side is cropped; a multiple of 8 [default: 256].
    #[arg(long)]
    crop: Option<usize>,
    /// Images whose shorter side is below this many pixels are skipped and counted
    /// [default: the crop; 0: no check].
    #[arg(long)]
    min_image_side: Option<usize>,
    /// Seed of the decoder's initialisation, the data order and the crops [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Write the checkpoint, decoder.safetensors and loss.png every N iterations [default: 10000].
    #[arg(long)]
    save_every: Option<usize>,
    /// Write a sample grid every N iterations [default: 1000].
    #[arg(long)]
    sample_every: Option<usize>,
    /// Append a metrics line every N iterations [default: 10].
    #[arg(long)]
    log_every: Option<usize>,
    /// (content, style) pairs in the sample grids [default: 4].
    #[arg(long)]
    sample_pairs: Option<usize>,
}

macro_rules! set {
    ($field:expr, $arg:expr) => {
        if let Some(v) = $arg {
            $field = v;
        }
    };
}

/// The config of a new run: the paper's settings, then the flags.
fn build_config(a: &TrainDecoderArgs) -> Result<DecoderTrainConfig> {
    let encoder = match (&a.vgg, a.random_vgg) {
        (None, Some(width)) => EncoderSource::Random { width },
        (vgg, _) => EncoderSource::Weights(crate::stylize::weights::resolve(
            vgg.as_deref(),
            "vgg_normalised",
            "--vgg FILE",
        )?),
    };
    let mut c = DecoderTrainConfig::paper(
        a.content.clone().expect("clap requires --content"),
        a.styles.clone().expect("clap requires --styles"),
        encoder,
        a.out.clone(),
    );
    c.decoder_init = a.decoder.clone();
    c.fp16 = a.fp16;
    set!(c.batch_size, a.batch_size);
    set!(c.content_weight, a.content_weight);
    set!(c.style_weight, a.style_weight);
    set!(c.image_size, a.image_size);
    set!(c.crop, a.crop);
    c.min_side = a.min_image_side.unwrap_or(c.crop);
    set!(c.seed, a.seed);
    set!(c.sample_pairs, a.sample_pairs);
    Ok(c)
}

pub fn run_train_decoder(a: TrainDecoderArgs) -> Result<()> {
    let mut cfg = if a.run.resume {
        let ckpt = checkpoint_path(&a.out);
        let mut c = read_run_state(&ckpt)
            .map_err(|e| Error::Msg(format!("--resume: {e}")))?
            .config;
        c.out_dir = a.out.clone();
        c
    } else {
        build_config(&a)?
    };
    set!(cfg.iterations, a.iterations);
    set!(cfg.lr, a.lr);
    set!(cfg.lr_decay, a.lr_decay);
    set!(cfg.save_every, a.save_every);
    set!(cfg.sample_every, a.sample_every);
    set!(cfg.log_every, a.log_every);
    let dev = a.run.device()?;
    let opts = a.run.run_options();
    let s = train_decoder(&cfg, dev, &opts)?;
    if !s.interrupted {
        if let Some(last) = s.history.last() {
            println!(
                "final: iteration {}  content loss {:.4}  style loss {:.4}  total {:.4}  {:.1} img/s  {:.0}s",
                s.iterations, last.loss_c, last.loss_s, last.total, s.images_per_s, s.wall_seconds
            );
        }
    }
    Ok(())
}
