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
    checkpoint: PathBuf,
    /// Data folder for Fashion-MNIST or CIFAR runs (default: the one the checkpoint was trained on).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Validation folder(s) for folder runs (default: the ones the checkpoint was trained with).
    #[arg(long)]
    val_dir: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
}

pub fn run_eval(a: EvalArgs) -> Result<()> {
    let run = checkpoint::read_run_state(&a.checkpoint)?;
    let mut cfg = run.config;
    match (&mut cfg.data, a.data, a.val_dir.is_empty()) {
        (_, None, true) => {}
        (DataSpec::FashionMnist { dir } | DataSpec::Cifar { dir }, Some(d), true) => *dir = d,
        (DataSpec::ImageFolder { val, .. }, None, false) => *val = a.val_dir,
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
    let dev = device(a.device)?;
    let dtype = if cfg.fp16 { DType::F16 } else { DType::F32 };
    let (model, _) = checkpoint::load_resnet(&a.checkpoint, dev)?;
    let val = trainer::val_dataset(&cfg, &run_classes(&cfg)?)?;
    let loader = std::sync::Arc::new(crate::data::Loader::new(
        val,
        crate::data::LoaderConfig {
            batch_size: 256,
            shuffle: false,
            drop_last: false,
            seed: 0,
            augment: cfg.augment.eval(cfg.eval_resize),
            mixup_alpha: 0.0,
            prefetch: 2,
        },
    )?);
    let (top1, top5) = trainer::evaluate(&model, &loader, dtype, dev)?;
    println!(
        "{}: top-1 {top1:.2}%  top-5 {top5:.2}%  (trained {} epochs)",
        a.checkpoint.display(),
        run.epoch
    );
    Ok(())
}

// --- `engine predict`: classify image files with a checkpoint. ---

#[derive(Args)]
pub struct PredictArgs {
    /// A checkpoint written by `engine train`.
    #[arg(long)]
    checkpoint: PathBuf,
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
    let (model, run) = checkpoint::load_resnet(&a.checkpoint, dev)?;
    let cfg = run.config;
    let dtype = if cfg.fp16 { DType::F16 } else { DType::F32 };
    let k = cfg.model.num_classes;
    let names = match run_classes(&cfg) {
        Ok(n) if n.len() == k => n,
        _ => (0..k).map(|i| format!("class {i}")).collect(),
    };
    let eval = cfg.augment.eval(cfg.eval_resize);
    let channels = cfg.model.in_channels;
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
