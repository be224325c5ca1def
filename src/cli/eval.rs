//! `engine eval` (top-1/top-5 of a checkpoint on a validation set) and `engine predict` (the top
//! classes of image files under a checkpoint).

use super::train::run_classes;
use super::{device, DeviceArg};
use crate::train::{checkpoint, trainer, DataSpec};
use crate::{DType, Device, Error, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct EvalArgs {
    /// A checkpoint written by `engine train`.
    #[arg(required_unless_present = "weights")]
    checkpoint: Option<PathBuf>,
    /// Or plain ResNet weights (a torchvision state dict converted by tools/convert_torchvision.py),
    /// scored on --val-dir folders whose sorted class folders are the model's classes in order
    /// (as torchvision's ImageFolder numbers them).
    #[arg(long, conflicts_with = "checkpoint", requires = "val_dir")]
    weights: Option<PathBuf>,
    /// Data folder for Fashion-MNIST or CIFAR runs (default: the one the checkpoint was trained on).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Validation folder(s) for folder runs (default: the ones the checkpoint was trained with).
    #[arg(long)]
    val_dir: Vec<PathBuf>,
    /// Score on re-textured images (a folder of texture photographs; src/data/texture_swap.rs),
    /// or `none` for the plain images; default: as the checkpoint was trained. Crosses the two
    /// kinds of data: a plain-trained model on re-textured images and the other way round.
    #[arg(long, value_name = "DIR|none")]
    texture_swap: Option<PathBuf>,
    /// Seed of the texture draw with --texture-swap DIR (default: the checkpoint's, else 0).
    #[arg(long)]
    texture_swap_seed: Option<u64>,
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
}

/// Applies `engine eval`'s `--texture-swap DIR|none` and `--texture-swap-seed` to a run's config.
fn override_texture_swap(
    cfg: &mut crate::train::TrainConfig,
    flag: Option<&std::path::Path>,
    seed: Option<u64>,
) {
    match flag {
        None => {
            if let (Some(spec), Some(s)) = (cfg.texture_swap.as_mut(), seed) {
                spec.seed = s;
            }
        }
        Some(p) if p.as_os_str() == "none" => cfg.texture_swap = None,
        Some(p) => {
            let old = cfg.texture_swap.take();
            cfg.texture_swap = Some(crate::train::TextureSwapSpec {
                dir: p.to_path_buf(),
                seed: seed.or(old.map(|o| o.seed)).unwrap_or(0),
                join_plain: false,
            });
        }
    }
}

/// A classifier to score (`engine eval`, `engine shape-bias`): the model, the data config it is
/// evaluated with (validation data, evaluation transform), its classes.
pub(super) struct EvalTarget {
    pub model: crate::models::ResNet,
    pub cfg: crate::train::TrainConfig,
    pub classes: Vec<String>,
    pub dtype: DType,
    pub what: String,
}

/// A training checkpoint and its validation data, overridden by `data` (Fashion-MNIST / CIFAR
/// folder) or `val_dir` (image folders).
pub(super) fn eval_checkpoint(
    path: &std::path::Path,
    data: Option<PathBuf>,
    val_dir: &[PathBuf],
    dev: Device,
) -> Result<EvalTarget> {
    let run = checkpoint::read_run_state(path)?;
    let mut cfg = run.config;
    // Evaluation reads no training data: a SIN+IN run's joined folders play no part.
    if let DataSpec::FashionMnist { join, .. } = &mut cfg.data {
        join.clear();
    }
    match (&mut cfg.data, data, val_dir.is_empty()) {
        (_, None, true) => {}
        (DataSpec::FashionMnist { dir, .. } | DataSpec::Cifar { dir }, Some(d), true) => *dir = d,
        (DataSpec::ImageFolder { val, .. }, None, false) => *val = val_dir.to_vec(),
        (spec, _, _) => {
            return Err(Error::Msg(format!(
                "the checkpoint was trained on {}: override its data with {}",
                spec.describe(),
                if matches!(spec, DataSpec::ImageFolder { .. }) {
                    "--val-dir DIR"
                } else {
                    "--data DIR"
                }
            )))
        }
    }
    let (model, _) = checkpoint::load_resnet(path, dev)?;
    Ok(EvalTarget {
        model,
        classes: run_classes(&cfg)?,
        dtype: if cfg.fp16 { DType::F16 } else { DType::F32 },
        cfg,
        what: format!("{} (trained {} epochs)", path.display(), run.epoch),
    })
}

/// Plain ResNet weights scored on image folders whose sorted class folders are its classes.
pub(super) fn eval_weights(
    path: &std::path::Path,
    val_dir: &[PathBuf],
    dev: Device,
) -> Result<EvalTarget> {
    use crate::train::{Recipe, TrainConfig};
    let p = crate::models::load_pretrained_resnet(path, DType::F32, dev)?;
    let first = val_dir.first().ok_or_else(|| {
        Error::Msg(
            "--weights needs --val-dir DIR (class folders in the model's class order)".into(),
        )
    })?;
    let classes = crate::data::folder::folder_classes(first)?;
    if classes.len() != p.config.num_classes {
        return Err(Error::Msg(format!(
            "{} has {} class folders but the model has {} outputs",
            first.display(),
            classes.len(),
            p.config.num_classes
        )));
    }
    let mut cfg = TrainConfig::imagenet(
        Recipe::Baseline,
        vec![],
        val_dir.to_vec(),
        50,
        PathBuf::new(),
    );
    cfg.model = p.config;
    Ok(EvalTarget {
        model: p.model,
        cfg,
        classes,
        dtype: DType::F32,
        what: path.display().to_string(),
    })
}

pub fn run_eval(a: EvalArgs) -> Result<()> {
    let dev = device(a.device)?;
    let mut t = match (&a.checkpoint, &a.weights) {
        (Some(c), _) => eval_checkpoint(c, a.data.clone(), &a.val_dir, dev)?,
        (None, Some(w)) => eval_weights(w, &a.val_dir, dev)?,
        (None, None) => unreachable!("clap requires a checkpoint or --weights"),
    };
    override_texture_swap(&mut t.cfg, a.texture_swap.as_deref(), a.texture_swap_seed);
    let val = trainer::val_dataset(&t.cfg, &t.classes)?;
    let loader = std::sync::Arc::new(crate::data::Loader::new(
        val,
        crate::data::LoaderConfig {
            batch_size: 256,
            shuffle: false,
            drop_last: false,
            seed: 0,
            augment: t.cfg.augment.eval(t.cfg.eval_resize),
            mixup_alpha: 0.0,
            mixup_on_host: true,
            prefetch: 2,
        },
    )?);
    let (top1, top5) = trainer::evaluate(&t.model, &loader, t.dtype, dev)?;
    let on = match &t.cfg.texture_swap {
        Some(s) => format!(
            " on images re-textured from {} (seed {})",
            s.dir.display(),
            s.seed
        ),
        None => String::new(),
    };
    println!("{}{on}: top-1 {top1:.2}%  top-5 {top5:.2}%", t.what);
    Ok(())
}

// --- `engine predict`: classify image files with a checkpoint. ---

#[derive(Args)]
pub struct PredictArgs {
    /// A checkpoint written by `engine train`.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Or plain ResNet weights: a torchvision state dict converted by tools/convert_torchvision.py
    /// (architecture inferred from the file; evaluated as torchvision does: 256 → center 224,
    /// ImageNet mean/std).
    #[arg(
        long,
        conflicts_with = "checkpoint",
        required_unless_present = "checkpoint"
    )]
    weights: Option<PathBuf>,
    /// Image files (JPEG, PNG, BMP, WebP); converted to grayscale for 1-channel models.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// How many classes to print per image.
    #[arg(long, default_value_t = 5)]
    top: usize,
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
}

pub fn run_predict(a: PredictArgs) -> Result<()> {
    use crate::nn::{Mode, Module};
    let dev = device(a.device)?;
    let Classifier {
        model,
        dtype,
        names,
        eval,
    } = match (&a.checkpoint, &a.weights) {
        (Some(ckpt), _) => Classifier::from_checkpoint(ckpt, dev)?,
        (None, Some(w)) => Classifier::from_weights(w, dev)?,
        (None, None) => unreachable!("clap requires --checkpoint or --weights"),
    };
    let channels = model.config.in_channels;
    let s = eval.size;
    let _g = crate::NoGradGuard::new();
    let mut failed = 0usize;
    for path in &a.images {
        let img = match crate::data::folder::decode_image(path, channels) {
            Ok(img) => img,
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
                continue;
            }
        };
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
        let x = crate::data::augment::apply(&img, &eval, &mut rng);
        let x = crate::Tensor::from_vec(x, [1, channels, s, s], Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(dev)?;
        let probs: Vec<f32> = model
            .forward(&x, Mode::EVAL)?
            .to_dtype(DType::F32)?
            .softmax(-1)?
            .to_vec()?;
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&i, &j| probs[j].total_cmp(&probs[i]));
        println!("{}", path.display());
        for (rank, &c) in order.iter().take(a.top.max(1)).enumerate() {
            println!("  {}. {:<24} {:6.2}%", rank + 1, names[c], 100.0 * probs[c]);
        }
    }
    if failed > 0 {
        return Err(Error::Msg(format!(
            "{failed} of {} image(s) could not be read",
            a.images.len()
        )));
    }
    Ok(())
}

/// A trained ResNet ready to classify: the model, its dtype, class names, evaluation transform.
struct Classifier {
    model: crate::models::ResNet,
    dtype: DType,
    names: Vec<String>,
    eval: crate::data::augment::AugmentConfig,
}

impl Classifier {
    fn from_checkpoint(path: &std::path::Path, dev: Device) -> Result<Classifier> {
        let (model, run) = checkpoint::load_resnet(path, dev)?;
        let cfg = run.config;
        let k = cfg.model.num_classes;
        Ok(Classifier {
            model,
            dtype: if cfg.fp16 { DType::F16 } else { DType::F32 },
            names: match run_classes(&cfg) {
                Ok(n) if n.len() == k => n,
                _ => (0..k).map(|i| format!("class {i}")).collect(),
            },
            eval: cfg.augment.eval(cfg.eval_resize),
        })
    }

    /// Plain weights: torchvision's evaluation transform for full-size models; for small-input
    /// models, that of the Fashion-MNIST (1 channel) or CIFAR (3 channels) presets.
    fn from_weights(path: &std::path::Path, dev: Device) -> Result<Classifier> {
        use crate::train::{Recipe, TrainConfig};
        let p = crate::models::load_pretrained_resnet(path, DType::F32, dev)?;
        let out = PathBuf::new();
        let preset = match (p.config.small_input, p.config.in_channels) {
            (false, _) => TrainConfig::imagenet(Recipe::Baseline, vec![], vec![], 50, out),
            (true, 1) => TrainConfig::fashion_mnist(Recipe::Baseline, out.clone(), 18, 16, out),
            (true, _) => TrainConfig::cifar(Recipe::Baseline, out.clone(), 18, 16, out),
        };
        let k = p.config.num_classes;
        Ok(Classifier {
            model: p.model,
            dtype: DType::F32,
            names: if p.class_names.len() == k {
                p.class_names
            } else {
                (0..k).map(|i| format!("class {i}")).collect()
            },
            eval: preset.augment.eval(preset.eval_resize),
        })
    }
}
