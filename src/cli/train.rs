//! `engine train`: the options of a training run and how they become a `TrainConfig`. Every option
//! can come from a recipe preset, a JSON config file (`--config`, the same format as the
//! `config.json` a run writes), and individual flags, applied in that order.

use super::RunFlags;
use crate::data::idx::FASHION_MNIST_DIR;
use crate::models::Variant;
use crate::train::config::DistillConfig;
use crate::train::{checkpoint, trainer, DataSpec, Recipe, TextureSwapSpec, TrainConfig};
use crate::{Error, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct TrainArgs {
    /// Recipe preset: the rows of Bag of Tricks' Tables 4 and 6 (cumulative), or the 2019 reproduction's.
    #[arg(long, value_enum, default_value = "reproduction-2019")]
    recipe: Recipe,
    /// JSON config file (as written to <out>/config.json); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run folder: config.json, metrics.jsonl, checkpoint.safetensors (default runs/fashion-mnist,
    /// runs/imagenet for folder data, runs/cifar for CIFAR).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    run: RunFlags,
    /// FP16 weights and activations with f32 master weights and dynamic loss scaling.
    #[arg(long)]
    fp16: bool,
    /// Run the training step channels-last (NHWC) on CUDA: cuDNN's NHWC convolutions, which use the
    /// tensor cores best with --fp16.
    #[arg(long)]
    channels_last: bool,
    /// ResNet depth: 18, 34, 50 or 101.
    #[arg(long)]
    depth: Option<usize>,
    /// Channels of the first stage (64 for the paper's models).
    #[arg(long)]
    width: Option<usize>,
    /// Architecture variant: a, b, c or d.
    #[arg(long)]
    variant: Option<char>,
    /// Pre-activation blocks.
    #[arg(long)]
    preact: bool,
    /// Epochs to train (recipe default: 8).
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per step (recipe default: 128).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Learning rate per 256 images (scaled linearly with the batch size).
    #[arg(long)]
    lr: Option<f64>,
    /// Linear learning-rate warmup, in epochs (fractions allowed).
    #[arg(long)]
    warmup_epochs: Option<f64>,
    /// L2 weight decay (biases and BN γ/β are exempt from `no-bias-decay` on).
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Label smoothing ε (0 = off; 0.1 in the paper).
    #[arg(long)]
    label_smoothing: Option<f64>,
    /// Mixup α (0 = off).
    #[arg(long)]
    mixup: Option<f64>,
    /// Zero-γ: start the last BN γ of every residual block at 0 (true/false; overrides the recipe).
    #[arg(long, value_name = "BOOL")]
    zero_gamma: Option<bool>,
    /// Cosine learning-rate decay instead of steps (true/false; overrides the recipe).
    #[arg(long, value_name = "BOOL")]
    cosine: Option<bool>,
    /// Exempt biases and BN γ/β from weight decay (true/false; overrides the recipe).
    #[arg(long, value_name = "BOOL")]
    no_bias_decay: Option<bool>,
    /// Brightness/contrast/saturation jitter strength (0 = off).
    #[arg(long)]
    jitter: Option<f32>,
    /// Fine-tune: start from these weights (an engine checkpoint or a converted torchvision
    /// state dict) instead of a random initialisation; a classifier head of another size is
    /// re-initialised.
    #[arg(long)]
    init_from: Option<PathBuf>,
    /// Distil from this teacher checkpoint (its architecture is read from it).
    #[arg(long)]
    teacher: Option<PathBuf>,
    /// Distillation temperature T.
    #[arg(long, default_value_t = 4.0)]
    temperature: f64,
    /// Weight of the distillation loss.
    #[arg(long, default_value_t = 0.5)]
    distill_weight: f64,
    /// Train on the first N training images only (0 = all).
    #[arg(long)]
    train_limit: Option<usize>,
    /// Evaluate on the first N test images only (0 = all).
    #[arg(long)]
    val_limit: Option<usize>,
    /// Re-texture every training and validation image with a crop of a photograph from this
    /// folder (a Stylized-ImageNet stand-in for objects on a dark background, e.g. Fashion-MNIST;
    /// see src/data/texture_swap.rs). Each image's draw is fixed by --texture-swap-seed.
    #[arg(long, value_name = "DIR")]
    texture_swap: Option<PathBuf>,
    /// With --texture-swap: train on the plain and the re-textured images together (SIN+IN).
    #[arg(long, requires = "texture_swap")]
    texture_swap_join: bool,
    /// With --texture-swap: seed of the per-image texture draw.
    #[arg(long, requires = "texture_swap", default_value_t = 0)]
    texture_swap_seed: u64,
    /// Seed for initialisation, shuffling and augmentation.
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    data: DataArgs,
}

// --- Data-format options of `engine train` (folder trees, CIFAR, Fashion-MNIST). ---

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum DataFormat {
    /// IDX files as Debian's dataset-fashion-mnist ships them (--data DIR).
    FashionMnist,
    /// ImageNet-style trees <root>/<class>/<images> (--train-dir DIR… --val-dir DIR…).
    Folder,
    /// CIFAR-10 or CIFAR-100 binary batches (--data DIR).
    Cifar,
}

#[derive(Args)]
pub(crate) struct DataArgs {
    /// Dataset format (default: fashion-mnist, or folder when --train-dir is given). Each format
    /// starts from its own preset: folder uses the ImageNet one (ResNet-50 B, 224 px).
    #[arg(long, value_enum)]
    data_format: Option<DataFormat>,
    /// Folder with the Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist, where
    /// Debian's dataset-fashion-mnist installs them) or with the CIFAR binary batches.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Fashion-MNIST-style data: also train on this folder's training split (repeatable), e.g. a
    /// stylized copy of --data from `engine stylize-idx` (Stylized-ImageNet's SIN+IN); validation
    /// stays on --data's test split.
    #[arg(long, value_name = "DIR")]
    join_data: Vec<PathBuf>,
    /// Training folder <root>/<class>/<images>; repeat to join several roots (e.g. ImageNet and
    /// Stylized-ImageNet) into one training set with the same classes.
    #[arg(long)]
    train_dir: Vec<PathBuf>,
    /// Validation folder <root>/<class>/<images> (classes must be among the training ones); repeatable.
    #[arg(long)]
    val_dir: Vec<PathBuf>,
    /// Folder data: images whose shorter side is below this many pixels are skipped and reported
    /// (default 16; 0 turns the check off).
    #[arg(long)]
    min_image_side: Option<usize>,
}

/// The data the flags name, or None when no data flag was given.
fn data_spec(d: &DataArgs) -> Result<Option<DataSpec>> {
    let format = match d.data_format {
        Some(f) => f,
        None if !d.train_dir.is_empty() || !d.val_dir.is_empty() => DataFormat::Folder,
        None if d.data.is_some() || !d.join_data.is_empty() => DataFormat::FashionMnist,
        None => return Ok(None),
    };
    Ok(Some(match format {
        DataFormat::FashionMnist => DataSpec::FashionMnist {
            dir: d
                .data
                .clone()
                .unwrap_or_else(|| PathBuf::from(FASHION_MNIST_DIR)),
            join: d.join_data.clone(),
        },
        other if !d.join_data.is_empty() => {
            return Err(Error::Msg(format!(
                "--join-data is for Fashion-MNIST-style IDX folders, not {}",
                match other {
                    DataFormat::Folder => "folder data (join roots with a repeated --train-dir)",
                    _ => "CIFAR batches",
                }
            )))
        }
        DataFormat::Cifar => DataSpec::Cifar {
            dir: d.data.clone().ok_or_else(|| {
                Error::Msg(
                    "--data-format cifar needs --data DIR (the folder with the .bin batches)"
                        .into(),
                )
            })?,
        },
        DataFormat::Folder => {
            if d.train_dir.is_empty() || d.val_dir.is_empty() {
                return Err(Error::Msg(
                    "--data-format folder needs --train-dir DIR (repeatable) and --val-dir DIR"
                        .into(),
                ));
            }
            if d.data.is_some() {
                return Err(Error::Msg(
                    "--data is for fashion-mnist and cifar; folder data takes --train-dir and --val-dir".into(),
                ));
            }
            DataSpec::ImageFolder {
                train: d.train_dir.clone(),
                val: d.val_dir.clone(),
                min_side: d.min_image_side.unwrap_or(16),
            }
        }
    }))
}

/// The recipe's preset for the data the flags name (Fashion-MNIST when none), for commands that
/// read a dataset the way `engine train` does but train nothing (`engine bench-loader`).
pub(crate) fn preset_for_data(recipe: Recipe, d: &DataArgs) -> Result<TrainConfig> {
    let spec = data_spec(d)?.unwrap_or(DataSpec::FashionMnist {
        dir: FASHION_MNIST_DIR.into(),
        join: Vec::new(),
    });
    Ok(preset(recipe, spec, PathBuf::from("runs/unused")))
}

/// The run folder: --out, else one named after the data format.
fn out_dir(a: &TrainArgs) -> PathBuf {
    if let Some(o) = &a.out {
        return o.clone();
    }
    PathBuf::from(match data_spec(&a.data) {
        Ok(Some(DataSpec::ImageFolder { .. })) => "runs/imagenet",
        Ok(Some(DataSpec::Cifar { .. })) => "runs/cifar",
        _ => "runs/fashion-mnist",
    })
}

/// The preset for `spec`'s kind of data.
fn preset(recipe: Recipe, spec: DataSpec, out: PathBuf) -> TrainConfig {
    match spec {
        DataSpec::FashionMnist { dir, join } => {
            let mut c = TrainConfig::fashion_mnist(recipe, dir.clone(), 18, 16, out);
            c.data = DataSpec::FashionMnist { dir, join };
            c
        }
        DataSpec::Cifar { dir } => TrainConfig::cifar(recipe, dir, 18, 16, out),
        DataSpec::ImageFolder {
            train,
            val,
            min_side,
        } => {
            let mut c = TrainConfig::imagenet(recipe, train.clone(), val.clone(), 50, out);
            c.data = DataSpec::ImageFolder {
                train,
                val,
                min_side,
            };
            c
        }
    }
}

/// The class names of a run: those saved in its config, else those of its data.
pub(crate) fn run_classes(cfg: &TrainConfig) -> Result<Vec<String>> {
    if !cfg.class_names.is_empty() {
        return Ok(cfg.class_names.clone());
    }
    Ok(match &cfg.data {
        DataSpec::FashionMnist { .. } => crate::data::idx::FASHION_MNIST_CLASSES
            .iter()
            .map(|s| s.to_string())
            .collect(),
        DataSpec::Cifar { dir } => crate::data::cifar::class_names(dir)?,
        DataSpec::ImageFolder { train, .. } => match train.first() {
            Some(root) => crate::data::folder::folder_classes(root)?,
            None => Vec::new(),
        },
    })
}

/// The data flags applied to `c`. Over a `--config` file of IDX data, `--data` and `--join-data`
/// replace only their own field (the config keeps the other); otherwise the flags' data replaces
/// the config's whole.
fn apply_data_flags(c: &mut TrainConfig, d: &DataArgs, from_file: bool) -> Result<()> {
    let idx_only = d.data_format.is_none() && d.train_dir.is_empty() && d.val_dir.is_empty();
    if from_file && idx_only && (d.data.is_some() || !d.join_data.is_empty()) {
        return match &mut c.data {
            DataSpec::FashionMnist { dir, join } => {
                if let Some(data) = &d.data {
                    *dir = data.clone();
                }
                if !d.join_data.is_empty() {
                    *join = d.join_data.clone();
                }
                Ok(())
            }
            DataSpec::Cifar { dir } if d.join_data.is_empty() => {
                *dir = d.data.clone().expect("--data given");
                Ok(())
            }
            other => Err(Error::Msg(format!(
                "the config trains on {}: --join-data joins Fashion-MNIST-style IDX folders only",
                other.describe()
            ))),
        };
    }
    if let Some(spec) = data_spec(d)? {
        c.data = spec;
    }
    Ok(())
}

fn build_config(a: &TrainArgs) -> Result<TrainConfig> {
    let mut c = match &a.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
                path: path.display().to_string(),
                source: e,
            })?;
            serde_json::from_str(&text).map_err(|e| {
                Error::Msg(format!(
                    "{}: not a valid training config: {e}",
                    path.display()
                ))
            })?
        }
        None => preset(
            a.recipe,
            data_spec(&a.data)?.unwrap_or(DataSpec::FashionMnist {
                dir: FASHION_MNIST_DIR.into(),
                join: Vec::new(),
            }),
            out_dir(a),
        ),
    };
    apply_data_flags(&mut c, &a.data, a.config.is_some())?;
    c.out_dir = out_dir(a);
    c.fp16 |= a.fp16;
    c.channels_last |= a.channels_last;
    c.model.preact |= a.preact;
    if let Some(v) = a.depth {
        c.model.depth = v;
    }
    if let Some(v) = a.width {
        c.model.width = v;
    }
    if let Some(v) = a.variant {
        c.model.variant = match v.to_ascii_lowercase() {
            'a' => Variant::A,
            'b' => Variant::B,
            'c' => Variant::C,
            'd' => Variant::D,
            other => {
                return Err(Error::Msg(format!(
                    "--variant {other}: expected a, b, c or d"
                )))
            }
        };
    }
    macro_rules! set {
        ($field:expr, $arg:expr) => {
            if let Some(v) = $arg {
                $field = v;
            }
        };
    }
    set!(c.epochs, a.epochs);
    set!(c.batch_size, a.batch_size);
    set!(c.lr_per_256, a.lr);
    set!(c.warmup_epochs, a.warmup_epochs);
    set!(c.weight_decay, a.weight_decay);
    set!(c.label_smoothing, a.label_smoothing);
    set!(c.mixup_alpha, a.mixup);
    set!(c.model.zero_gamma, a.zero_gamma);
    set!(c.cosine, a.cosine);
    set!(c.no_bias_decay, a.no_bias_decay);
    set!(c.augment.jitter, a.jitter);
    set!(c.train_limit, a.train_limit);
    set!(c.val_limit, a.val_limit);
    set!(c.seed, a.seed);
    if let Some(p) = &a.init_from {
        c.init_from = Some(p.clone());
    }
    if a.texture_swap.is_some()
        && matches!(&c.data, DataSpec::FashionMnist { join, .. } if !join.is_empty())
    {
        return Err(Error::Msg(
            "--texture-swap re-textures by the object's silhouette on a dark background, which \
             joined folders (--join-data, e.g. a stylized copy) do not have; use one or the other"
                .into(),
        ));
    }
    if let Some(dir) = &a.texture_swap {
        c.texture_swap = Some(TextureSwapSpec {
            dir: dir.clone(),
            seed: a.texture_swap_seed,
            join_plain: a.texture_swap_join,
        });
    }
    if let Some(t) = &a.teacher {
        let teacher_cfg = checkpoint::read_run_state(t)?.config.model;
        c.distill = Some(DistillConfig {
            teacher: t.clone(),
            teacher_model: teacher_cfg,
            temperature: a.temperature,
            weight: a.distill_weight,
        });
    }
    if c.recipe == Recipe::Distill && c.distill.is_none() {
        return Err(Error::Msg(
            "--recipe distill needs --teacher CHECKPOINT (e.g. a run of the mixup recipe)".into(),
        ));
    }
    if c.recipe == Recipe::SinFinetuneIn && c.init_from.is_none() {
        return Err(Error::Msg(
            "--recipe sin-finetune-in needs --init-from CHECKPOINT (a run of the sin recipe)"
                .into(),
        ));
    }
    if c.epochs == 0 || c.batch_size == 0 {
        return Err(Error::Msg(
            "--epochs and --batch-size must be at least 1".into(),
        ));
    }
    Ok(c)
}

pub fn run_train(a: TrainArgs) -> Result<()> {
    let cfg = if a.run.resume {
        let ckpt = trainer::checkpoint_path(&out_dir(&a));
        let mut c = checkpoint::read_run_state(&ckpt)
            .map_err(|e| Error::Msg(format!("--resume: {e}")))?
            .config;
        c.out_dir = out_dir(&a);
        if let Some(e) = a.epochs {
            c.epochs = e;
        }
        c
    } else {
        build_config(&a)?
    };
    let dev = a.run.device()?;
    eprintln!(
        "training ResNet-{}{:?} (width {}{}) on {} with recipe {} for {} epochs, batch {}, lr {:.4}{} → {}",
        cfg.model.depth,
        cfg.model.variant,
        cfg.model.width,
        if cfg.model.preact { ", pre-activation" } else { "" },
        dev,
        cfg.recipe.name(),
        cfg.epochs,
        cfg.batch_size,
        cfg.lr(),
        match (cfg.fp16, cfg.channels_last) {
            (true, true) => ", fp16, channels-last",
            (true, false) => ", fp16",
            (false, true) => ", channels-last",
            (false, false) => "",
        },
        cfg.out_dir.display()
    );
    eprintln!("data: {}", cfg.data.describe());
    let opts = a.run.run_options();
    let summary = trainer::train(&cfg, dev, &opts)?;
    if summary.interrupted {
        return Ok(());
    }
    if let Some(last) = summary.history.last() {
        println!(
            "final: top-1 {:.2}%  top-5 {:.2}%  best top-1 {:.2}%  {:.0} img/s  {:.0}s",
            last.top1, last.top5, summary.best_top1, summary.images_per_s, summary.wall_seconds
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: TrainArgs,
    }

    fn config(argv: &[&str]) -> TrainConfig {
        let w = Wrap::try_parse_from(std::iter::once("train").chain(argv.iter().copied()))
            .expect("parse");
        build_config(&w.args).expect("config")
    }

    /// The per-trick switches override what the recipe preset chose, one field each.
    #[test]
    fn trick_switches_override_the_recipe() {
        let full = config(&["--recipe", "mixup"]);
        assert!(full.model.zero_gamma && full.cosine && full.no_bias_decay);
        let c = config(&["--recipe", "mixup", "--zero-gamma", "false"]);
        assert!(!c.model.zero_gamma && c.cosine && c.no_bias_decay);
        assert_eq!(c.mixup_alpha, full.mixup_alpha);
        let c = config(&[
            "--recipe",
            "mixup",
            "--cosine",
            "false",
            "--no-bias-decay",
            "false",
        ]);
        assert!(c.model.zero_gamma && !c.cosine && !c.no_bias_decay);
        let c = config(&["--recipe", "baseline", "--zero-gamma", "true"]);
        assert!(c.model.zero_gamma && !c.cosine);
    }
}
