//! The training configuration and the named recipes. A `TrainConfig` is complete (every trick is a
//! field), serialisable (saved as `config.json` beside the run and inside every checkpoint) and built
//! from a recipe preset, then overridden field by field from the command line or a JSON file.
//!
//! Recipes follow the rows of Bag of Tricks' Tables 4 and 6, cumulatively:
//! `baseline` → `warmup` → `zero-gamma` → `no-bias-decay` → `cosine` → `label-smoothing` →
//! `mixup` → `distill`, plus `reproduction-2019` (tricks + mixup + smoothing + jitter without hue).

use crate::data::augment::{AugmentConfig, Preprocess};
use crate::models::{ResNetConfig, Variant};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DataSpec {
    /// IDX files (`train-*` and `t10k-*`, gzip or not) as Debian's dataset-fashion-mnist ships them.
    FashionMnist { dir: PathBuf },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Recipe {
    Baseline,
    Warmup,
    ZeroGamma,
    NoBiasDecay,
    Cosine,
    LabelSmoothing,
    Mixup,
    Distill,
    #[value(name = "reproduction-2019")]
    Reproduction2019,
}

impl Recipe {
    pub const ALL: [Recipe; 9] = [
        Recipe::Baseline,
        Recipe::Warmup,
        Recipe::ZeroGamma,
        Recipe::NoBiasDecay,
        Recipe::Cosine,
        Recipe::LabelSmoothing,
        Recipe::Mixup,
        Recipe::Distill,
        Recipe::Reproduction2019,
    ];
    fn rank(self) -> usize {
        Recipe::ALL.iter().position(|&r| r == self).unwrap()
    }
    pub fn name(self) -> &'static str {
        match self {
            Recipe::Baseline => "baseline",
            Recipe::Warmup => "warmup",
            Recipe::ZeroGamma => "zero-gamma",
            Recipe::NoBiasDecay => "no-bias-decay",
            Recipe::Cosine => "cosine",
            Recipe::LabelSmoothing => "label-smoothing",
            Recipe::Mixup => "mixup",
            Recipe::Distill => "distill",
            Recipe::Reproduction2019 => "reproduction-2019",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DistillConfig {
    /// A checkpoint (or model safetensors) of the teacher.
    pub teacher: PathBuf,
    /// The teacher's architecture.
    pub teacher_model: ResNetConfig,
    pub temperature: f64,
    /// Weight of the distillation term; the hard/smoothed loss gets 1 − weight.
    pub weight: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub recipe: Recipe,
    pub data: DataSpec,
    /// Use only the first N training / validation samples (0 = all): for short runs.
    pub train_limit: usize,
    pub val_limit: usize,
    pub model: ResNetConfig,
    pub epochs: usize,
    pub batch_size: usize,
    /// Learning rate per 256 images; the run uses lr_per_256 · batch/256 (linear scaling).
    pub lr_per_256: f64,
    pub warmup_epochs: f64,
    pub cosine: bool,
    /// Step decay milestones in epochs (used when `cosine` is off) and the factor.
    pub step_milestones: Vec<usize>,
    pub step_gamma: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub no_bias_decay: bool,
    pub label_smoothing: f64,
    pub mixup_alpha: f64,
    pub distill: Option<DistillConfig>,
    pub fp16: bool,
    pub seed: u64,
    pub augment: AugmentConfig,
    /// Shorter-side resize before the center crop at evaluation.
    pub eval_resize: usize,
    pub out_dir: PathBuf,
}

impl TrainConfig {
    /// The recipe's settings for Fashion-MNIST-sized data (28 px, 1 channel, 10 classes) with a
    /// ResNet of the given depth and width.
    pub fn fashion_mnist(
        recipe: Recipe,
        dir: PathBuf,
        depth: usize,
        width: usize,
        out_dir: PathBuf,
    ) -> TrainConfig {
        let at_least = |r: Recipe| {
            recipe.rank() >= r.rank()
                && (recipe != Recipe::Reproduction2019 || r != Recipe::Distill)
        };
        TrainConfig {
            recipe,
            data: DataSpec::FashionMnist { dir },
            train_limit: 0,
            val_limit: 0,
            model: ResNetConfig {
                depth,
                variant: Variant::B,
                preact: false,
                zero_gamma: at_least(Recipe::ZeroGamma),
                small_input: true,
                in_channels: 1,
                num_classes: 10,
                width,
            },
            epochs: 8,
            batch_size: 128,
            lr_per_256: 0.2,
            warmup_epochs: if at_least(Recipe::Warmup) { 1.0 } else { 0.0 },
            cosine: at_least(Recipe::Cosine),
            step_milestones: vec![4, 6],
            step_gamma: 0.1,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
            no_bias_decay: at_least(Recipe::NoBiasDecay),
            label_smoothing: if at_least(Recipe::LabelSmoothing) {
                0.1
            } else {
                0.0
            },
            mixup_alpha: if at_least(Recipe::Mixup) { 0.2 } else { 0.0 },
            distill: None,
            fp16: false,
            seed: 0,
            augment: AugmentConfig {
                size: 28,
                preprocess: Preprocess::PadCrop { pad: 2 },
                flip: true,
                jitter: if recipe == Recipe::Reproduction2019 {
                    0.4
                } else {
                    0.0
                },
                hue: false,
                lighting: 0.0,
                mean: vec![0.286],
                std: vec![0.353],
            },
            eval_resize: 28,
            out_dir,
        }
    }

    pub fn lr(&self) -> f64 {
        self.lr_per_256 * self.batch_size as f64 / 256.0
    }
}
