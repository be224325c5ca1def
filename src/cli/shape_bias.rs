//! `engine shape-bias`: the fraction of a classifier's decisions on cue-conflict images that follow
//! shape rather than texture (src/shape_bias.rs). Cue-conflict images come from the AdaIN stylizer
//! (converted reference weights via --vgg/--decoder, or a decoder trained with `engine
//! train-decoder`); the labelled images come from the classifier's own validation data, or from
//! --val-dir / --data.
//!
//! ```text
//! engine shape-bias --checkpoint runs/sin/checkpoint.safetensors \
//!     --vgg vgg_normalised.safetensors --decoder decoder.safetensors --pairs 1000 --out sb/
//! ```

use super::eval::{eval_checkpoint, eval_weights};
use super::{device, DeviceArg};
use crate::models::Stylizer;
use crate::nn::init::Init;
use crate::nn::{Mode, Module};
use crate::shape_bias::{shape_bias, Classifier, CueMaker, ShapeBiasConfig};
use crate::{DType, Error, Result, Tensor};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct ShapeBiasArgs {
    /// A checkpoint written by `engine train`.
    #[arg(long, required_unless_present = "weights")]
    checkpoint: Option<PathBuf>,
    /// Or plain ResNet weights (tools/convert_torchvision.py) with --val-dir class folders.
    #[arg(long, conflicts_with = "checkpoint")]
    weights: Option<PathBuf>,
    /// Labelled images: Fashion-MNIST or CIFAR folder (default: the checkpoint's validation data).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Labelled images: class folders (default: the checkpoint's validation folders).
    #[arg(long)]
    val_dir: Vec<PathBuf>,
    /// Converted normalised VGG-19 weights (tools/convert_adain_weights.py vgg_normalised.pth;
    /// default: the copy `scripts/setup.sh install_adain_weights` installs, in $ENGINE_ADAIN_DIR,
    /// else .toolchain/adain).
    #[arg(long)]
    vgg: Option<PathBuf>,
    /// Converted AdaIN decoder weights, or the decoder.safetensors of `engine train-decoder`
    /// (default: the installed copy).
    #[arg(long)]
    decoder: Option<PathBuf>,
    /// For testing only: a seeded random stylizer of this VGG width instead of --vgg/--decoder.
    #[arg(long, conflicts_with_all = ["vgg", "decoder"])]
    random_stylizer: Option<usize>,
    /// How cue-conflict images are made: adain (default; the installed AdaIN weights or
    /// --vgg/--decoder) or texture-swap
    /// (the shape image's silhouette filled with the texture image's central patch, for objects on
    /// a dark background such as Fashion-MNIST; needs no weights).
    #[arg(long, value_enum)]
    cue: Option<Cue>,
    /// With --cue texture-swap: weight of the shape image's own blurred shading (0: silhouette only).
    #[arg(long, default_value_t = crate::data::texture_swap::DEFAULT_CONTENT_WEIGHT)]
    content_weight: f32,
    /// Cue-conflict images to make and classify.
    #[arg(long, default_value_t = 200)]
    pairs: usize,
    /// AdaIN α (1: the texture's statistics replace the content's).
    #[arg(long, default_value_t = 1.0)]
    alpha: f64,
    /// Side of the square images the stylizer works on (multiple of 8; default 224, or 112 for
    /// classifiers of images below 64 px).
    #[arg(long)]
    stylize_size: Option<usize>,
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Folder for report.json (every trial) and cue_conflict.png (a grid of the first pairs).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Cue {
    Adain,
    TextureSwap,
}

pub fn run_shape_bias(a: ShapeBiasArgs) -> Result<()> {
    let dev = device(a.device)?;
    let mut t = match (&a.checkpoint, &a.weights) {
        (Some(c), _) => eval_checkpoint(c, a.data.clone(), &a.val_dir, dev)?,
        (None, Some(w)) => eval_weights(w, &a.val_dir, dev)?,
        (None, None) => unreachable!("clap requires --checkpoint or --weights"),
    };
    // The sources are the plain images, also for a model trained on re-textured ones.
    t.cfg.texture_swap = None;
    let dataset = crate::train::trainer::val_dataset(&t.cfg, &t.classes)?;
    let cue = a.cue.unwrap_or(Cue::Adain);
    let stylizer = match (cue, a.random_stylizer) {
        (Cue::TextureSwap, _) => None,
        (_, Some(w)) => Some(Stylizer::new(&mut Init::new(a.seed, DType::F32, dev), w)?),
        (Cue::Adain, None) => {
            let (v, d) =
                crate::stylize::weights::resolve_pair(a.vgg.as_deref(), a.decoder.as_deref())
                    .map_err(|e| {
                        Error::Msg(format!(
                            "{e}; or use --cue texture-swap for objects on a dark background"
                        ))
                    })?;
            Some(Stylizer::load(v, d, DType::F32, dev)?)
        }
    };
    let maker = match &stylizer {
        Some(stylizer) => CueMaker::Stylizer {
            stylizer,
            dtype: DType::F32,
        },
        None => CueMaker::TextureSwap {
            content_weight: a.content_weight,
        },
    };
    let eval = t.cfg.augment.eval(t.cfg.eval_resize);
    let stylize_size = a
        .stylize_size
        .unwrap_or(if eval.size < 64 { 112 } else { 224 });
    let model = &t.model;
    let predict = |x: &Tensor| -> Result<Vec<usize>> {
        let logits = model.forward(x, Mode::EVAL)?.to_dtype(DType::F32)?;
        let (n, k) = logits.shape().dims2("shape-bias")?;
        let v: Vec<f32> = logits.to_vec()?;
        Ok((0..n)
            .map(|i| {
                let row = &v[i * k..(i + 1) * k];
                (0..k).fold(0, |b, j| if row[j] > row[b] { j } else { b })
            })
            .collect())
    };
    let classifier = Classifier {
        channels: t.cfg.model.in_channels,
        eval,
        dtype: t.dtype,
        predict: &predict,
    };
    let cfg = ShapeBiasConfig {
        pairs: a.pairs,
        seed: a.seed,
        alpha: a.alpha,
        stylize_size,
        batch_size: a.batch_size,
        grid: a.out.as_ref().map(|o| o.join("cue_conflict.png")),
    };
    let how = match cue {
        Cue::Adain => format!("{stylize_size}² AdaIN stylization, α {}", a.alpha),
        Cue::TextureSwap => format!("texture swap, content weight {}", a.content_weight),
    };
    eprintln!(
        "shape bias of {} on {} cue-conflict images ({how}) from {}",
        t.what,
        a.pairs,
        t.cfg.data.describe()
    );
    let r = shape_bias(dataset.as_ref(), &maker, &classifier, dev, &cfg)?;
    if let Some(out) = &a.out {
        let json = serde_json::to_vec_pretty(&r).expect("json");
        crate::nn::state::write_atomic(&out.join("report.json"), &json)?;
    }
    println!(
        "shape bias {:.3}  (shape {}, texture {}, other {}, unreadable {}; over pairs whose sources are both classified correctly: {:.3})",
        r.shape_bias,
        r.shape_decisions,
        r.texture_decisions,
        r.other_decisions,
        r.skipped,
        r.shape_bias_both_correct
    );
    Ok(())
}
