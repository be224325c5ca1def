//! Evaluation of a pix2pix generator: the image metrics (mean L1, PSNR), how the generator runs at
//! test time, and one pass over a validation split that the trainer (per-epoch validation, sample
//! grids) and `engine pix2pix test` share.
//!
//! Metrics, per image, then averaged over images:
//! - `l1`: mean |output − target| over pixels and channels in the networks' [-1, 1] units (the same
//!   scale as the training term `G_L1`);
//! - `psnr`: `10·log10(1/MSE)` dB with both images mapped to [0, 1]; identical images (MSE 0) give
//!   the cap `PSNR_CAP_DB` = 100 dB instead of infinity, so means and JSON stay finite;
//! - `perceptual` (optional): the feature distance of a frozen network (`PerceptualLoss::loss`).
//!
//! Test-time mode (`GenMode`): pix2pix's `test.py` keeps the generator in training mode unless
//! `--eval` is given — BN normalises with each image's own statistics and dropout stays on, as the
//! paper does ("we apply dropout at test time"). `GenMode::Reference` does that, one image per batch,
//! with dropout masks seeded by the image's index (the same outputs every run) and the BN running
//! statistics restored afterwards (so evaluating never changes a model being trained);
//! `GenMode::Eval` uses the running statistics and no dropout.

use super::dataset::{stack, PairTransform, PairedFolder};
use crate::models::{PerceptualLoss, UnetGenerator};
use crate::nn::{named_params, Mode, Module, ParamKind};
use crate::viz::{tensor_to_rgb8, PixelRange, Rgb8};
use crate::{no_grad, Device, Result, Tensor};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// The PSNR reported for identical images.
pub const PSNR_CAP_DB: f64 = 100.0;

/// Dropout steps of test-time generation start here (training uses steps 0, 1, …).
const EVAL_DROPOUT_BASE: u64 = 1 << 62;

/// PSNR in dB for a mean squared error of [0, 1] images, capped at `PSNR_CAP_DB`.
pub fn psnr_from_mse(mse: f64) -> f64 {
    if mse <= 0.0 {
        return PSNR_CAP_DB;
    }
    (-10.0 * mse.log10()).min(PSNR_CAP_DB)
}

/// PSNR of `output` against `target`, both in [-1, 1] (mapped to [0, 1] first).
pub fn psnr(output: &[f32], target: &[f32]) -> f64 {
    let n = output.len().max(1) as f64;
    let mse: f64 = output
        .iter()
        .zip(target)
        .map(|(&o, &t)| {
            let d = (o as f64 - t as f64) / 2.0;
            d * d
        })
        .sum::<f64>()
        / n;
    psnr_from_mse(mse)
}

/// Mean absolute difference, in the images' own units.
pub fn l1(output: &[f32], target: &[f32]) -> f64 {
    let n = output.len().max(1) as f64;
    output
        .iter()
        .zip(target)
        .map(|(&o, &t)| (o as f64 - t as f64).abs())
        .sum::<f64>()
        / n
}

/// How the generator runs at test time (see the module comment).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GenMode {
    /// The reference's default: BN batch statistics (one image), dropout on.
    Reference,
    /// `--eval`: BN running statistics, no dropout.
    Eval,
}

impl GenMode {
    pub fn from_eval_flag(eval: bool) -> GenMode {
        if eval {
            GenMode::Eval
        } else {
            GenMode::Reference
        }
    }
}

/// The generator's output for `input` (no gradient), image `index` seeding the dropout masks.
pub fn generate(g: &UnetGenerator, input: &Tensor, mode: GenMode, index: usize) -> Result<Tensor> {
    no_grad(|| match mode {
        GenMode::Reference => {
            g.set_dropout_step(EVAL_DROPOUT_BASE + index as u64);
            g.forward(input, Mode::TRAIN)
        }
        GenMode::Eval => g.forward(input, Mode::EVAL),
    })
}

/// Runs `f`, then puts back the buffers (BN running statistics) of `m` that it changed.
fn keeping_buffers<T>(m: &dyn Module, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let saved: Vec<(Tensor, Vec<f64>)> = named_params(m)
        .into_iter()
        .filter(|(_, p)| p.kind == ParamKind::Buffer)
        .map(|(_, p)| Ok((p.tensor.clone(), p.tensor.to_vec_f64()?)))
        .collect::<Result<_>>()?;
    let out = f();
    for (t, v) in saved {
        t.assign(&Tensor::from_f64s(
            &v,
            t.shape().clone(),
            t.dtype(),
            t.device(),
        )?)?;
    }
    out
}

/// What to compute in `evaluate`.
#[derive(Clone, Copy)]
pub struct EvalOptions<'a> {
    pub mode: GenMode,
    /// Evaluate the first `limit` images only.
    pub limit: Option<usize>,
    pub perceptual: Option<&'a PerceptualLoss>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageMetrics {
    pub name: String,
    pub l1: f64,
    pub psnr: f64,
    pub perceptual: Option<f64>,
}

/// Per-image metrics and their means.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalSummary {
    pub l1: f64,
    pub psnr: f64,
    pub perceptual: Option<f64>,
    pub images: Vec<ImageMetrics>,
}

/// One evaluated image: input, output and target as `[1, C, H, W]` tensors in [-1, 1].
pub struct EvalImage<'a> {
    pub index: usize,
    pub metrics: &'a ImageMetrics,
    pub input: &'a Tensor,
    pub output: &'a Tensor,
    pub target: &'a Tensor,
}

/// Runs the generator over `data` one image at a time (resized to `transform.size`, no jitter),
/// calling `visit` on each result (to write images or grids), and returns the metrics.
pub fn evaluate(
    g: &UnetGenerator,
    data: &PairedFolder,
    transform: &PairTransform,
    opts: EvalOptions,
    device: Device,
    mut visit: impl FnMut(&EvalImage) -> Result<()>,
) -> Result<EvalSummary> {
    let t = PairTransform {
        jitter: None,
        ..*transform
    };
    let n = opts.limit.unwrap_or(usize::MAX).min(data.len());
    let mut images = Vec::with_capacity(n);
    keeping_buffers(g, || {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0); // unused without jitter
        for index in 0..n {
            let sample = data.sample(index, &t, &mut rng)?;
            let (input, target) = stack(std::slice::from_ref(&sample), &t, device, false)?;
            let output = generate(g, &input, opts.mode, index)?;
            let out_v: Vec<f32> = output.to_vec()?;
            let perceptual = match opts.perceptual {
                Some(p) => Some(no_grad(|| p.loss(&output, &target))?.to_scalar()?),
                None => None,
            };
            let metrics = ImageMetrics {
                name: data.name(index),
                l1: l1(&out_v, &sample.target),
                psnr: psnr(&out_v, &sample.target),
                perceptual,
            };
            visit(&EvalImage {
                index,
                metrics: &metrics,
                input: &input,
                output: &output,
                target: &target,
            })?;
            images.push(metrics);
        }
        Ok(())
    })?;
    let mean = |f: &dyn Fn(&ImageMetrics) -> f64| {
        images.iter().map(f).sum::<f64>() / images.len().max(1) as f64
    };
    Ok(EvalSummary {
        l1: mean(&|m| m.l1),
        psnr: mean(&|m| m.psnr),
        perceptual: opts
            .perceptual
            .map(|_| mean(&|m| m.perceptual.unwrap_or(f64::NAN))),
        images,
    })
}

/// A grid row of one evaluated image: input, output, target.
pub fn grid_row(image: &EvalImage) -> Result<Vec<Rgb8>> {
    [image.input, image.output, image.target]
        .iter()
        .map(|t| tensor_to_rgb8(t, 0, PixelRange::MinusOneOne))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psnr_matches_hand_computed_values_and_caps_identical_images() {
        // [0, 1] values differing by 0.1 everywhere: MSE 0.01, PSNR 20 dB; in [-1, 1] units the
        // difference is 0.2 and L1 is 0.2.
        let target = vec![-0.5f32, 0.0, 0.5, 0.9];
        let output: Vec<f32> = target.iter().map(|v| v - 0.2).collect();
        assert!((psnr(&output, &target) - 20.0).abs() < 1e-5);
        assert!((l1(&output, &target) - 0.2).abs() < 1e-6);
        assert_eq!(psnr(&target, &target), PSNR_CAP_DB);
        // Black against white: MSE 1, 0 dB. Half the pixels off by 1/2 ([0, 1]): MSE 1/8, 9.03 dB.
        assert_eq!(psnr(&[-1.0], &[1.0]), 0.0);
        let p = psnr(&[0.0, 1.0], &[1.0, 1.0]);
        assert!((p - 10.0 * 8f64.log10()).abs() < 1e-9, "{p}");
    }
}
