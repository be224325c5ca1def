//! The configuration of an AdaIN decoder training run and its learning-rate schedule. A
//! `DecoderTrainConfig` is complete (every setting of the run is a field), serialisable (saved as
//! `<out_dir>/config.json` and inside every checkpoint) and starts from the settings of Huang &
//! Belongie (2017) as naoto0804/pytorch-AdaIN's `train.py` uses them (`DecoderTrainConfig::paper`).
//!
//! Invariants:
//! - The learning rate of iteration `i` (0-based, the step that makes iteration count `i + 1`) is
//!   `lr / (1 + lr_decay · i)`, the reference's `adjust_learning_rate`; it depends on nothing else.
//! - The fields that decide the data order and the losses (`DecoderTrainConfig::check_resumable`)
//!   must be those of the checkpoint to resume; the others (iterations, lr, intervals) may change.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where the frozen VGG encoder comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum EncoderSource {
    /// Converted `vgg_normalised.pth` weights (safetensors; `tools/convert_adain_weights.py`).
    Weights(PathBuf),
    /// For testing only: a seeded random encoder of this width (64 for the real network's shape),
    /// He-initialised. Its features mean nothing, so neither does a decoder trained against it.
    Random { width: usize },
}

/// Everything that defines a decoder training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecoderTrainConfig {
    /// Content images (searched recursively; MS-COCO in the paper).
    pub content_dir: PathBuf,
    /// Style images (searched recursively; WikiArt in the paper).
    pub style_dir: PathBuf,
    pub encoder: EncoderSource,
    /// Start the decoder from these converted weights (a `decoder.pth` converted by
    /// `tools/convert_adain_weights.py`, or a run's `decoder.safetensors`) instead of a fresh
    /// seeded initialisation.
    pub decoder_init: Option<PathBuf>,
    /// Run folder: config.json, checkpoint.safetensors, decoder.safetensors, metrics.jsonl,
    /// loss.png, samples/.
    pub out_dir: PathBuf,
    /// Optimiser steps in total (160 000 in the reference).
    pub iterations: usize,
    /// Content images per step, each paired with a style image (8).
    pub batch_size: usize,
    /// Adam's initial learning rate (1e-4) and its inverse-time decay (5e-5).
    pub lr: f64,
    pub lr_decay: f64,
    /// The training loss is `content_weight · L_c + style_weight · L_s` (1 and 10).
    pub content_weight: f64,
    pub style_weight: f64,
    /// Each image's shorter side is resized to `image_size` (512), then a random `crop`² square
    /// (256) is cut out; `crop` must be a multiple of 8 (the encoder downsamples by 8).
    pub image_size: usize,
    pub crop: usize,
    /// Images whose shorter side is below this many pixels are skipped and counted (upscaling them
    /// would mostly blur); 0 turns the check off.
    pub min_side: usize,
    /// Seed of the decoder's initialisation, the data streams and the crops (and of a random
    /// encoder).
    pub seed: u64,
    /// FP16 weights and activations with f32 master weights and dynamic loss scaling (for CUDA).
    pub fp16: bool,
    /// Write the checkpoint, decoder.safetensors and loss.png every this many iterations (10 000).
    pub save_every: usize,
    /// Write samples/iter_XXXXXX.png every this many iterations.
    pub sample_every: usize,
    /// Append a line to metrics.jsonl every this many iterations.
    pub log_every: usize,
    /// Fixed (content, style) pairs shown in the sample grids, one row each.
    pub sample_pairs: usize,
}

/// The reference's inverse-time decay: `lr0 / (1 + decay · iteration)`.
pub fn inverse_time_lr(lr0: f64, decay: f64, iteration: usize) -> f64 {
    lr0 / (1.0 + decay * iteration as f64)
}

impl DecoderTrainConfig {
    /// The paper's settings: 160 000 iterations of batch 8, Adam lr 1e-4 decayed by 5e-5, style
    /// weight 10, 512 px images cropped to 256; checkpoints every 10 000 iterations (the
    /// reference's `save_model_interval`), samples every 1000, a metrics line every 10.
    pub fn paper(
        content_dir: PathBuf,
        style_dir: PathBuf,
        encoder: EncoderSource,
        out_dir: PathBuf,
    ) -> DecoderTrainConfig {
        DecoderTrainConfig {
            content_dir,
            style_dir,
            encoder,
            decoder_init: None,
            out_dir,
            iterations: 160_000,
            batch_size: 8,
            lr: 1e-4,
            lr_decay: 5e-5,
            content_weight: 1.0,
            style_weight: 10.0,
            image_size: 512,
            crop: 256,
            min_side: 256,
            seed: 0,
            fp16: false,
            save_every: 10_000,
            sample_every: 1000,
            log_every: 10,
            sample_pairs: 4,
        }
    }

    /// The learning rate of iteration `iteration` (0-based).
    pub fn lr_at(&self, iteration: usize) -> f64 {
        inverse_time_lr(self.lr, self.lr_decay, iteration)
    }

    /// Checks the settings make a run, naming the flag of a bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Msg(msg));
        for (flag, v) in [
            ("--iterations", self.iterations),
            ("--batch-size", self.batch_size),
            ("--save-every", self.save_every),
            ("--sample-every", self.sample_every),
            ("--log-every", self.log_every),
        ] {
            if v == 0 {
                return bad(format!("{flag} must be at least 1"));
            }
        }
        if self.crop == 0 || self.crop % 8 != 0 {
            return bad(format!(
                "--crop {} must be a positive multiple of 8 (the encoder downsamples by 8; 256 in the paper)",
                self.crop
            ));
        }
        if self.image_size < self.crop {
            return bad(format!(
                "--image-size {} must be at least --crop {} (images are resized to --image-size, then cropped)",
                self.image_size, self.crop
            ));
        }
        let ok_lr = self.lr > 0.0 && self.lr.is_finite();
        if !ok_lr || self.lr_decay.is_nan() || self.lr_decay < 0.0 {
            return bad(format!(
                "--lr must be positive and --lr-decay non-negative (got {} and {})",
                self.lr, self.lr_decay
            ));
        }
        let (cw, sw) = (self.content_weight, self.style_weight);
        if cw.is_nan() || sw.is_nan() || cw < 0.0 || sw < 0.0 || cw + sw <= 0.0 {
            return bad(format!(
                "--content-weight and --style-weight must be non-negative and not both 0 (got {} and {})",
                self.content_weight, self.style_weight
            ));
        }
        if let EncoderSource::Random { width: 0 } = self.encoder {
            return bad("--random-vgg WIDTH must be at least 1".into());
        }
        Ok(())
    }

    /// Errors unless `saved` (a checkpoint's config) has the same data order, preprocessing,
    /// losses and networks as `self`, so that resuming continues the same run.
    pub fn check_resumable(&self, saved: &DecoderTrainConfig) -> Result<()> {
        let key = |c: &DecoderTrainConfig| {
            (
                c.encoder.clone(),
                c.batch_size,
                c.seed,
                c.image_size,
                c.crop,
                c.min_side,
                c.fp16,
                (c.content_weight, c.style_weight),
            )
        };
        if key(self) != key(saved) {
            return Err(Error::Msg(format!(
                "--resume: the checkpoint was trained with other settings (encoder, batch size, \
                 seed, image size, crop, min side, fp16, loss weights): checkpoint {:?}, now {:?}; \
                 resume with the checkpoint's config (the command line takes it from there)",
                key(saved),
                key(self)
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_rate_decays_as_the_reference() {
        let c = DecoderTrainConfig::paper(
            "c".into(),
            "s".into(),
            EncoderSource::Random { width: 4 },
            "out".into(),
        );
        assert_eq!(c.lr_at(0), 1e-4);
        for i in [1usize, 7, 1000, 20_000, 159_999] {
            let expect = 1e-4 / (1.0 + 5e-5 * i as f64);
            assert!((c.lr_at(i) - expect).abs() <= 1e-20, "iteration {i}");
        }
        assert!(
            (c.lr_at(20_000) - 5e-5).abs() < 1e-18,
            "halved after 20 000 iterations"
        );
        c.validate().unwrap();
        let odd = DecoderTrainConfig {
            crop: 250,
            ..c.clone()
        };
        assert!(odd
            .validate()
            .unwrap_err()
            .to_string()
            .contains("multiple of 8"));
        let changed = DecoderTrainConfig {
            seed: 1,
            ..c.clone()
        };
        assert!(c.check_resumable(&changed).is_err());
        let longer = DecoderTrainConfig {
            iterations: 1,
            lr: 1e-3,
            ..c.clone()
        };
        c.check_resumable(&longer).unwrap();
    }
}
