//! The configuration of a pix2pix run (`engine pix2pix train`), saved as the run folder's
//! `config.json` and inside every checkpoint, and the rules that size the networks and schedule the
//! learning rate from it.
//!
//! Invariants: a config that passes `validate` builds networks that accept `image_size` inputs (the
//! U-Net's `2^num_downs` divides the size; the PatchGAN still has at least one output logit); the
//! learning rate is a pure function of the epoch (`lr_at`), so a resumed run schedules as an
//! uninterrupted one; defaults follow Isola et al. 2017 (Adam 2e-4, β 0.5/0.999, λ_L1 100, batch 1,
//! 286 → 256 jitter, `unet_256`, 70×70 PatchGAN) and scale down for smaller images.

use crate::models::{PatchGanConfig, UnetConfig};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Which half of a pair is the input: pix2pix's `--direction`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Direction {
    /// The left half (A) is the input, the right half (B) the target.
    #[value(name = "AtoB", alias = "a-to-b")]
    AtoB,
    /// The right half (B) is the input, the left half (A) the target.
    #[value(name = "BtoA", alias = "b-to-a")]
    BtoA,
}

/// A frozen network for a perceptual loss or distance, as `--perceptual` names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PerceptualSpec {
    /// An `engine train` checkpoint (its architecture and input normalisation are read from it).
    Checkpoint(PathBuf),
    /// A torchvision-style ResNet state dict saved as safetensors (architecture inferred from its
    /// shapes, ImageNet normalisation).
    Torchvision(PathBuf),
    /// AdaIN's normalised VGG-19 (converted `vgg_normalised`): taps relu1_1 … relu4_1.
    Vgg(PathBuf),
}

impl PerceptualSpec {
    /// Parses `none` (None), `torchvision:FILE`, `vgg:FILE` or `CHECKPOINT`.
    pub fn parse(s: &str) -> Option<PerceptualSpec> {
        if s.is_empty() || s == "none" {
            None
        } else if let Some(p) = s.strip_prefix("torchvision:") {
            Some(PerceptualSpec::Torchvision(p.into()))
        } else if let Some(p) = s.strip_prefix("vgg:") {
            Some(PerceptualSpec::Vgg(p.into()))
        } else {
            Some(PerceptualSpec::Checkpoint(s.into()))
        }
    }

    pub fn path(&self) -> &std::path::Path {
        match self {
            PerceptualSpec::Checkpoint(p)
            | PerceptualSpec::Torchvision(p)
            | PerceptualSpec::Vgg(p) => p,
        }
    }

    /// Feature maps the network gives, so weights the perceptual term takes: 4 for the VGG, 5 for
    /// a ResNet.
    pub fn taps(&self) -> usize {
        match self {
            PerceptualSpec::Vgg(_) => crate::models::VGG_TAPS,
            _ => crate::models::RESNET_TAPS,
        }
    }
}

impl std::fmt::Display for PerceptualSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PerceptualSpec::Checkpoint(p) => write!(f, "{}", p.display()),
            PerceptualSpec::Torchvision(p) => write!(f, "torchvision:{}", p.display()),
            PerceptualSpec::Vgg(p) => write!(f, "vgg:{}", p.display()),
        }
    }
}

/// The perceptual term of the generator's loss.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerceptualTerm {
    pub net: PerceptualSpec,
    /// λ_perc (10 by default).
    pub weight: f64,
    /// Weights of the network's taps (`PerceptualSpec::taps` of them): stem, layer1 … layer4 of a
    /// ResNet; relu1_1 … relu4_1 of the VGG.
    pub taps: Vec<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pix2PixConfig {
    /// Folder with `train/` and `val/` of A|B pairs.
    pub data: PathBuf,
    /// Run folder: config.json, metrics.jsonl, checkpoint.safetensors, charts, samples/.
    pub out_dir: PathBuf,
    pub direction: Direction,
    /// Side of the square crops the networks see (256 in the paper).
    pub image_size: usize,
    /// Side both halves are resized to before the random crop (286 for 256: `size·286/256`).
    pub load_size: usize,
    /// Random horizontal flip (the same for input and target).
    pub flip: bool,
    /// Channels of the input and output images: 3, or 1 for grayscale (luminance).
    pub input_nc: usize,
    pub output_nc: usize,
    pub generator: UnetConfig,
    pub discriminator: PatchGanConfig,
    /// λ_L1 (100).
    pub lambda_l1: f64,
    pub perceptual: Option<PerceptualTerm>,
    /// Adam's learning rate and betas, for both networks.
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// Epochs at the initial learning rate, then epochs of linear decay to zero.
    pub epochs: usize,
    pub epochs_decay: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// Write a sample grid every this many iterations (0 = never).
    pub sample_every: usize,
    /// Validation and samples with BN running statistics and no dropout (`--eval`), instead of the
    /// reference's test-time default (BN batch statistics, dropout on).
    pub eval_mode: bool,
}

/// The U-Net depth for `size` px: 8 (`unet_256`, 1×1 bottleneck) at 256 and above, else the number
/// of times 2 divides the size (log2 for powers of two: 5 at 32 px, 7 at 128 px).
pub fn default_num_downs(size: usize) -> usize {
    (size.trailing_zeros() as usize).min(8)
}

/// PatchGAN layers for `size` px: 3 (70×70 patches) from 128 px, 2 (34×34) from 32 px, else 1.
pub fn default_n_layers(size: usize) -> usize {
    match size {
        s if s >= 128 => 3,
        s if s >= 32 => 2,
        _ => 1,
    }
}

/// The jitter's resize target: `size · 286/256`, rounded (286 for 256, 36 for 32).
pub fn default_load_size(size: usize) -> usize {
    (size * 286 + 128) / 256
}

impl Pix2PixConfig {
    /// The paper's settings for `image_size` px RGB pairs, networks scaled to the size.
    pub fn new(data: PathBuf, out_dir: PathBuf, image_size: usize) -> Pix2PixConfig {
        let (input_nc, output_nc) = (3, 3);
        Pix2PixConfig {
            data,
            out_dir,
            direction: Direction::AtoB,
            image_size,
            load_size: default_load_size(image_size),
            flip: true,
            input_nc,
            output_nc,
            generator: UnetConfig {
                num_downs: default_num_downs(image_size),
                ..UnetConfig::unet_256(input_nc, output_nc)
            },
            discriminator: PatchGanConfig {
                n_layers: default_n_layers(image_size),
                ..PatchGanConfig::pix2pix(input_nc + output_nc)
            },
            lambda_l1: 100.0,
            perceptual: None,
            lr: 2e-4,
            beta1: 0.5,
            beta2: 0.999,
            epochs: 100,
            epochs_decay: 100,
            batch_size: 1,
            seed: 0,
            sample_every: 200,
            eval_mode: false,
        }
    }

    /// Sets the image channels of both networks.
    pub fn set_channels(&mut self, input_nc: usize, output_nc: usize) {
        self.input_nc = input_nc;
        self.output_nc = output_nc;
        self.generator.in_channels = input_nc;
        self.generator.out_channels = output_nc;
        self.discriminator.in_channels = input_nc + output_nc;
    }

    pub fn total_epochs(&self) -> usize {
        self.epochs + self.epochs_decay
    }

    /// The learning rate of 0-based `epoch`: `lr` for the first `epochs`, then
    /// `lr · (1 − (k + 1)/(epochs_decay + 1))` in decay epoch `k` (pix2pix's `linear` policy: the
    /// last epoch still trains, at `lr/(epochs_decay + 1)`, and the rate would reach zero next).
    pub fn lr_at(&self, epoch: usize) -> f64 {
        if epoch < self.epochs {
            return self.lr;
        }
        let k = (epoch - self.epochs + 1) as f64;
        self.lr * (1.0 - k / (self.epochs_decay as f64 + 1.0)).max(0.0)
    }

    /// Checks that the networks fit the image size and the numbers make sense.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Msg(format!("pix2pix config: {msg}")));
        let s = self.image_size;
        let g = &self.generator;
        if s < 8 {
            return bad(format!("--image-size {s} is too small (at least 8)"));
        }
        if g.num_downs < 2 || s % (1 << g.num_downs) != 0 {
            return bad(format!(
                "the U-Net's {} levels need an image size that is a multiple of {} (got {s}); \
                 use a size with more factors of two (32, 64, 128, 256) or lower --num-downs",
                g.num_downs,
                1usize << g.num_downs
            ));
        }
        if self.load_size < s {
            return bad(format!(
                "--load-size {} is smaller than --image-size {s}",
                self.load_size
            ));
        }
        // PatchGAN output side: s/2^n_layers, then two stride-1 4×4 convs with padding 1 (−1 each).
        let n = self.discriminator.n_layers;
        if (s >> n.min(63)) < 3 {
            return bad(format!(
                "a PatchGAN with --n-layers {n} leaves no output logit at {s} px; use fewer layers"
            ));
        }
        for (what, nc) in [
            ("--input-nc", self.input_nc),
            ("--output-nc", self.output_nc),
        ] {
            if nc != 1 && nc != 3 {
                return bad(format!("{what} {nc}: images have 1 or 3 channels"));
            }
        }
        if g.in_channels != self.input_nc
            || g.out_channels != self.output_nc
            || self.discriminator.in_channels != self.input_nc + self.output_nc
        {
            return bad("network channels disagree with --input-nc/--output-nc".into());
        }
        if self.batch_size == 0 || self.total_epochs() == 0 {
            return bad("--batch-size and --epochs + --epochs-decay must be at least 1".into());
        }
        let non_negative = |v: f64| v.is_finite() && v >= 0.0;
        if !(self.lr.is_finite() && self.lr > 0.0 && non_negative(self.lambda_l1)) {
            return bad(format!(
                "--lr {} must be positive and --lambda-l1 {} non-negative",
                self.lr, self.lambda_l1
            ));
        }
        if let Some(p) = &self.perceptual {
            if !non_negative(p.weight) || !p.taps.iter().all(|&w| non_negative(w)) {
                return bad(format!(
                    "--lambda-perc {} and --perc-taps {:?} must be non-negative",
                    p.weight, p.taps
                ));
            }
            if p.taps.iter().all(|&w| w == 0.0) {
                return bad("--perc-taps are all zero".into());
            }
            if p.taps.len() != p.net.taps() {
                return bad(format!(
                    "--perc-taps has {} weights; --perceptual {} has {} taps",
                    p.taps.len(),
                    p.net,
                    p.net.taps()
                ));
            }
            if matches!(p.net, PerceptualSpec::Vgg(_)) && self.image_size < 16 {
                return bad(format!(
                    "--image-size {} is too small for the VGG perceptual loss: its relu4_1 maps \
                     are 1/8 of the image and need 2 px for their reflection padding (use ≥ 16)",
                    self.image_size
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_scale_the_networks_and_the_schedule_decays_linearly() {
        let c = Pix2PixConfig::new("d".into(), "o".into(), 256);
        assert_eq!(c.generator, UnetConfig::unet_256(3, 3));
        assert_eq!(c.discriminator, PatchGanConfig::pix2pix(6));
        assert_eq!(c.load_size, 286);
        c.validate().unwrap();
        let s = Pix2PixConfig::new("d".into(), "o".into(), 32);
        assert_eq!(
            (s.generator.num_downs, s.discriminator.n_layers, s.load_size),
            (5, 2, 36)
        );
        s.validate().unwrap();
        let mut c = Pix2PixConfig::new("d".into(), "o".into(), 64);
        (c.epochs, c.epochs_decay) = (2, 3);
        let lrs: Vec<f64> = (0..5).map(|e| c.lr_at(e) / c.lr).collect();
        assert_eq!(lrs, vec![1.0, 1.0, 0.75, 0.5, 0.25]);
        c.image_size = 48;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("multiple of"));
        assert_eq!(
            PerceptualSpec::parse("torchvision:x.safetensors"),
            Some(PerceptualSpec::Torchvision("x.safetensors".into()))
        );
        assert_eq!(PerceptualSpec::parse("none"), None);
    }
}
