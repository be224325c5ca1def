//! The training configuration and the named recipes. A `TrainConfig` is complete (every trick is a
//! field), serialisable (saved as `config.json` beside the run and inside every checkpoint) and built
//! from a recipe preset, then overridden field by field from the command line or a JSON file.
//!
//! Recipes follow the rows of Bag of Tricks' Tables 4 and 6, cumulatively:
//! `baseline` → `warmup` → `zero-gamma` → `no-bias-decay` → `cosine` → `label-smoothing` →
//! `mixup` → `distill`, plus `reproduction-2019` (tricks + mixup + smoothing + jitter without hue).
//! The Stylized-ImageNet recipes of Geirhos et al. (2019) use none of the tricks, only their own
//! step schedules (`Recipe::geirhos_schedule`): `sin` (60 epochs, lr 0.1 ×0.1 at 20 and 40), `sin-in`
//! (SIN and IN joined: 45 epochs, ×0.1 at 15 and 30) and `sin-finetune-in` (from a SIN checkpoint,
//! `--init-from`: 60 epochs on IN, lr 0.01 ×0.1 at 30); batch 256, momentum 0.9, weight decay 1e-4.

use crate::data::augment::{AugmentConfig, Preprocess};
use crate::models::{ResNetConfig, Variant};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DataSpec {
    /// IDX files (`train-*` and `t10k-*`, gzip or not) as Debian's dataset-fashion-mnist ships them.
    /// The training split of each `join` folder (e.g. a stylized copy from `engine stylize-idx`) is
    /// trained on too (SIN+IN); validation uses `dir`'s.
    FashionMnist {
        dir: PathBuf,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        join: Vec<PathBuf>,
    },
    /// ImageNet-style folder trees `<root>/<class>/<images>`; several roots are joined into one
    /// dataset (ImageNet + Stylized-ImageNet). Validation uses the training classes. Images whose
    /// shorter side is below `min_side` px are skipped and reported (0: no check).
    ImageFolder {
        train: Vec<PathBuf>,
        val: Vec<PathBuf>,
        #[serde(default)]
        min_side: usize,
    },
    /// CIFAR-10 or CIFAR-100 binary batches (`data_batch_*.bin`/`test_batch.bin` or
    /// `train.bin`/`test.bin`).
    Cifar { dir: PathBuf },
}

impl DataSpec {
    /// A short description for logs.
    pub fn describe(&self) -> String {
        let roots = |r: &[PathBuf]| {
            r.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" + ")
        };
        match self {
            DataSpec::FashionMnist { dir, join } if join.is_empty() => {
                format!("Fashion-MNIST in {}", dir.display())
            }
            DataSpec::FashionMnist { dir, join } => format!(
                "Fashion-MNIST-style IDX files: training {} + {}, validation {}",
                dir.display(),
                roots(join),
                dir.display()
            ),
            DataSpec::ImageFolder { train, val, .. } => {
                format!("image folders {} (val {})", roots(train), roots(val))
            }
            DataSpec::Cifar { dir } => format!("CIFAR in {}", dir.display()),
        }
    }
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
    /// Geirhos et al.: ResNet-50 trained on Stylized-ImageNet.
    Sin,
    /// Geirhos et al.: trained on SIN and ImageNet joined (repeat --train-dir).
    #[value(name = "sin-in")]
    SinIn,
    /// Geirhos et al.: a SIN-trained network (--init-from) fine-tuned on ImageNet.
    #[value(name = "sin-finetune-in")]
    SinFinetuneIn,
}

/// One of Geirhos et al.'s step schedules: epochs, lr per 256 images, epochs where lr ×0.1.
pub struct GeirhosSchedule {
    pub epochs: usize,
    pub lr_per_256: f64,
    pub milestones: Vec<usize>,
}

impl Recipe {
    /// The Bag of Tricks rows (cumulative), then the 2019 reproduction; the SIN recipes stand apart.
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
    /// Position among the cumulative trick recipes; the SIN recipes use no trick (rank of baseline).
    fn rank(self) -> usize {
        Recipe::ALL.iter().position(|&r| r == self).unwrap_or(0)
    }
    /// The schedule of a Stylized-ImageNet recipe (None for the Bag of Tricks ones).
    pub fn geirhos_schedule(self) -> Option<GeirhosSchedule> {
        let (epochs, lr_per_256, milestones) = match self {
            Recipe::Sin => (60, 0.1, vec![20, 40]),
            Recipe::SinIn => (45, 0.1, vec![15, 30]),
            Recipe::SinFinetuneIn => (60, 0.01, vec![30]),
            _ => return None,
        };
        Some(GeirhosSchedule {
            epochs,
            lr_per_256,
            milestones,
        })
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
            Recipe::Sin => "sin",
            Recipe::SinIn => "sin-in",
            Recipe::SinFinetuneIn => "sin-finetune-in",
        }
    }
}

/// Re-texture every image (`data::texture_swap`): a Stylized-ImageNet stand-in for images of one
/// object on a dark background, such as Fashion-MNIST.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextureSwapSpec {
    /// Folder of texture photographs.
    pub dir: PathBuf,
    /// Seed of the per-image texture draw (fixed across training seeds, as SIN is one dataset).
    pub seed: u64,
    /// Train on the plain and the re-textured images together (the SIN+IN analogue); validation
    /// is re-textured either way.
    pub join_plain: bool,
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
    /// Feed training batches channels-last (NHWC): on CUDA every convolution, batch norm and
    /// pooling layer of the step then runs channels-last (cuDNN's fast layout for f16 on tensor
    /// cores); on the CPU it changes nothing but one conversion per batch.
    #[serde(default)]
    pub channels_last: bool,
    pub seed: u64,
    pub augment: AugmentConfig,
    /// Shorter-side resize before the center crop at evaluation.
    pub eval_resize: usize,
    pub out_dir: PathBuf,
    /// The classes in label order, filled in by the trainer from the training data (empty in a
    /// preset); `engine predict` names its answers with them.
    #[serde(default)]
    pub class_names: Vec<String>,
    /// Start from these weights instead of a random initialisation (fine-tuning): an engine training
    /// checkpoint or a converted torchvision state dict. Tensors whose shape differs (a new
    /// classifier head) keep their fresh initialisation; every other tensor must be in the file.
    #[serde(default)]
    pub init_from: Option<PathBuf>,
    /// Train and validate on re-textured images (None: the images as they are).
    #[serde(default)]
    pub texture_swap: Option<TextureSwapSpec>,
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
            data: DataSpec::FashionMnist {
                dir,
                join: Vec::new(),
            },
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
            channels_last: false,
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
            class_names: Vec::new(),
            init_from: None,
            texture_swap: None,
        }
        .with_geirhos_schedule()
    }

    /// The recipe's settings for ImageNet-style folders as in Bag of Tricks: ResNet variant B of
    /// width 64, 224 px random resized crops (area 8–100%) with flip, jitter 0.4 and PCA lighting
    /// 0.1, ImageNet mean/std, evaluation at 256 → center 224; batch 256, lr 0.1 per 256, weight
    /// decay 1e-4, 120 epochs (steps at 30/60/90 without cosine), warmup 5 epochs. The number of
    /// classes is 0 here, meaning "from the training folders" (the trainer fills it in).
    pub fn imagenet(
        recipe: Recipe,
        train: Vec<PathBuf>,
        val: Vec<PathBuf>,
        depth: usize,
        out_dir: PathBuf,
    ) -> TrainConfig {
        let base = TrainConfig::fashion_mnist(recipe, PathBuf::new(), depth, 64, out_dir);
        TrainConfig {
            data: DataSpec::ImageFolder {
                train,
                val,
                min_side: 16,
            },
            model: ResNetConfig {
                small_input: false,
                in_channels: 3,
                num_classes: 0,
                ..base.model
            },
            epochs: 120,
            batch_size: 256,
            lr_per_256: 0.1,
            warmup_epochs: if base.warmup_epochs > 0.0 { 5.0 } else { 0.0 },
            step_milestones: vec![30, 60, 90],
            weight_decay: 1e-4,
            augment: AugmentConfig {
                size: 224,
                preprocess: Preprocess::RandomResizedCrop { min_area: 0.08 },
                flip: true,
                jitter: 0.4,
                hue: false,
                lighting: 0.1,
                mean: vec![0.485, 0.456, 0.406],
                std: vec![0.229, 0.224, 0.225],
            },
            eval_resize: 256,
            ..base
        }
        .with_geirhos_schedule()
    }

    /// The recipe's settings for CIFAR-10/100 (32 px RGB, pad-4 crops + flip, CIFAR-10 mean/std),
    /// otherwise as for Fashion-MNIST; classes from the data (the trainer fills them in).
    pub fn cifar(
        recipe: Recipe,
        dir: PathBuf,
        depth: usize,
        width: usize,
        out_dir: PathBuf,
    ) -> TrainConfig {
        let base = TrainConfig::fashion_mnist(recipe, PathBuf::new(), depth, width, out_dir);
        TrainConfig {
            data: DataSpec::Cifar { dir },
            model: ResNetConfig {
                in_channels: 3,
                num_classes: 0,
                ..base.model
            },
            augment: AugmentConfig {
                size: 32,
                preprocess: Preprocess::PadCrop { pad: 4 },
                mean: vec![0.4914, 0.4822, 0.4465],
                std: vec![0.2470, 0.2435, 0.2616],
                ..base.augment.clone()
            },
            eval_resize: 32,
            ..base
        }
        .with_geirhos_schedule()
    }

    /// Applies a SIN recipe's schedule (Geirhos et al.: plain step decay, batch 256, momentum 0.9
    /// without Nesterov, weight decay 1e-4 on every parameter, no warmup) to a preset.
    fn with_geirhos_schedule(mut self) -> TrainConfig {
        if let Some(g) = self.recipe.geirhos_schedule() {
            self.epochs = g.epochs;
            self.lr_per_256 = g.lr_per_256;
            self.step_milestones = g.milestones;
            self.step_gamma = 0.1;
            self.cosine = false;
            self.warmup_epochs = 0.0;
            self.batch_size = 256;
            self.momentum = 0.9;
            self.nesterov = false;
            self.weight_decay = 1e-4;
            self.augment.jitter = 0.0;
            self.augment.lighting = 0.0;
        }
        self
    }

    pub fn lr(&self) -> f64 {
        self.lr_per_256 * self.batch_size as f64 / 256.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(recipe: Recipe) -> TrainConfig {
        TrainConfig::imagenet(
            recipe,
            vec!["sin".into()],
            vec!["val".into()],
            50,
            "out".into(),
        )
    }

    #[test]
    fn sin_recipes_follow_geirhos_schedules_without_tricks() {
        for (recipe, epochs, lr, milestones) in [
            (Recipe::Sin, 60, 0.1, vec![20, 40]),
            (Recipe::SinIn, 45, 0.1, vec![15, 30]),
            (Recipe::SinFinetuneIn, 60, 0.01, vec![30]),
        ] {
            let c = folder(recipe);
            assert_eq!(
                (
                    c.epochs,
                    c.lr_per_256,
                    c.step_milestones.clone(),
                    c.batch_size
                ),
                (epochs, lr, milestones, 256),
                "{recipe:?}"
            );
            assert_eq!((c.momentum, c.nesterov, c.weight_decay), (0.9, false, 1e-4));
            assert!(!c.cosine && c.warmup_epochs == 0.0 && !c.no_bias_decay);
            assert!(!c.model.zero_gamma && c.label_smoothing == 0.0 && c.mixup_alpha == 0.0);
            assert_eq!((c.model.depth, c.model.variant), (50, Variant::B));
            assert_eq!(c.lr(), lr);
        }
    }

    #[test]
    fn trick_recipes_are_cumulative() {
        let base = folder(Recipe::Baseline);
        assert!(!base.model.zero_gamma && base.warmup_epochs == 0.0 && !base.cosine);
        let mixup = folder(Recipe::Mixup);
        assert!(mixup.model.zero_gamma && mixup.no_bias_decay && mixup.cosine);
        assert_eq!((mixup.label_smoothing, mixup.mixup_alpha), (0.1, 0.2));
        assert_eq!(mixup.warmup_epochs, 5.0);
    }
}
