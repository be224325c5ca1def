//! A perceptual (feature-matching) loss over a frozen engine ResNet, for image-to-image training
//! (pix2pix with a perceptual term, as in Johnson et al. 2016 with a ResNet instead of VGG):
//!
//! `loss(x̂, y) = Σ_t w_t · mean(d(φ_t(norm(x̂)), φ_t(norm(y))))`
//!
//! - `φ_t` are the five taps of `ResNet::forward_features` (stem output, then the end of layer1 …
//!   layer4), computed in eval mode (BN running statistics; nothing is updated);
//! - `norm` maps the stated `InputRange` to [0, 1] and then normalises per channel with the mean/std
//!   the network was trained with (ImageNet's for torchvision weights, the checkpoint's own for an
//!   engine checkpoint, built by `train::checkpoint::perceptual_loss`);
//! - `d` is `|·|` (L1) or `(·)²` (MSE), averaged over all elements of the tap; `w_t` a weight per tap
//!   (taps of weight 0 are skipped).
//!
//! Invariants: the network is frozen (`ResNet::freeze`): its parameters are not variables and are
//! `Buffer`s, so backward computes no gradient for them and no optimizer sees them, while gradients
//! flow to the output image. The target's features are computed under `no_grad` (the target never
//! receives a gradient). Output and target must have the network's input channels; a mismatch is an
//! error naming both. The loss is computed in the network's dtype (inputs are cast).

use crate::models::{ResNet, ResNetConfig};
use crate::nn::init::Init;
use crate::nn::{named_params, state, Mode};
use crate::{no_grad, DType, Device, Error, Result, Tensor};
use std::path::Path;

/// ImageNet's per-channel RGB mean and standard deviation (torchvision's normalisation).
pub const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];

/// The value range of the images given to `PerceptualLoss::loss`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputRange {
    /// [−1, 1], as pix2pix's tanh output and its normalised targets.
    MinusOneToOne,
    /// [0, 1].
    ZeroToOne,
}

/// The distance between feature maps, averaged over their elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureDistance {
    L1,
    Mse,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PerceptualConfig {
    pub range: InputRange,
    pub distance: FeatureDistance,
    /// Weights of the taps: stem, layer1, layer2, layer3, layer4. At least one must be non-zero.
    pub tap_weights: [f64; 5],
}

impl Default for PerceptualConfig {
    /// [−1, 1] inputs, L1, every tap weighted 1.
    fn default() -> Self {
        PerceptualConfig {
            range: InputRange::MinusOneToOne,
            distance: FeatureDistance::L1,
            tap_weights: [1.0; 5],
        }
    }
}

pub struct PerceptualLoss {
    config: PerceptualConfig,
    net: ResNet,
    /// `x · scale + shift` maps the input range to the network's normalised input; `[1, C, 1, 1]`.
    scale: Tensor,
    shift: Tensor,
}

impl PerceptualLoss {
    /// Wraps `net` (frozen here) whose training inputs were normalised with `mean`/`std` (one value
    /// per input channel, or one value for all).
    pub fn new(
        mut net: ResNet,
        mean: &[f64],
        std: &[f64],
        config: PerceptualConfig,
    ) -> Result<PerceptualLoss> {
        const OP: &str = "perceptual_loss";
        let c = net.config.in_channels;
        let per_channel = |v: &[f64], what: &str| -> Result<Vec<f64>> {
            match v.len() {
                1 => Ok(vec![v[0]; c]),
                n if n == c => Ok(v.to_vec()),
                n => Err(Error::bad(
                    OP,
                    format!("{n} {what} values for a network with {c} input channels"),
                )),
            }
        };
        let (mean, std) = (per_channel(mean, "mean")?, per_channel(std, "std")?);
        if std.iter().any(|&s| !s.is_finite() || s <= 0.0) {
            return Err(Error::bad(
                OP,
                format!("std {std:?} must be positive and finite"),
            ));
        }
        let w = &config.tap_weights;
        if w.iter().any(|v| !v.is_finite()) || w.iter().all(|&v| v == 0.0) {
            return Err(Error::bad(
                OP,
                format!("tap weights {w:?} must be finite and not all zero"),
            ));
        }
        net.freeze();
        let first = named_params(&net)
            .into_iter()
            .next()
            .map(|(_, p)| p.tensor)
            .ok_or_else(|| Error::bad(OP, "the network has no parameters"))?;
        let (dtype, device) = (first.dtype(), first.device());
        // Range → [0, 1]: u = a·x + b; then (u − mean)/std.
        let (a, b) = match config.range {
            InputRange::MinusOneToOne => (0.5, 0.5),
            InputRange::ZeroToOne => (1.0, 0.0),
        };
        let scale: Vec<f64> = std.iter().map(|s| a / s).collect();
        let shift: Vec<f64> = mean.iter().zip(&std).map(|(m, s)| (b - m) / s).collect();
        Ok(PerceptualLoss {
            config,
            net,
            scale: Tensor::from_f64s(&scale, [1, c, 1, 1], dtype, device)?,
            shift: Tensor::from_f64s(&shift, [1, c, 1, 1], dtype, device)?,
        })
    }

    /// Over torchvision weights saved as safetensors (`safetensors.torch.save_file(
    /// torchvision.models.resnet50(weights=…).state_dict(), path)`), for the architecture `resnet`
    /// (variant B, torchvision names; every tensor must be present), normalised with ImageNet's
    /// mean/std.
    pub fn from_torchvision(
        path: &Path,
        resnet: ResNetConfig,
        config: PerceptualConfig,
        dtype: DType,
        device: Device,
    ) -> Result<PerceptualLoss> {
        let net = ResNet::new(resnet, &mut Init::new(0, dtype, device))?;
        state::load_module(path, &net, true)?;
        PerceptualLoss::new(net, &IMAGENET_MEAN, &IMAGENET_STD, config)
    }

    /// `from_torchvision` for torchvision's ResNet-50 (1000 classes).
    pub fn from_torchvision_resnet50(
        path: &Path,
        config: PerceptualConfig,
        dtype: DType,
        device: Device,
    ) -> Result<PerceptualLoss> {
        Self::from_torchvision(path, ResNetConfig::resnet50(1000), config, dtype, device)
    }

    pub fn config(&self) -> &PerceptualConfig {
        &self.config
    }

    /// The frozen feature network.
    pub fn network(&self) -> &ResNet {
        &self.net
    }

    /// The five feature maps of `x` (images in the configured range), recorded for backward when
    /// `x` requires grad.
    pub fn features(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let c = self.net.config.in_channels;
        if x.rank() != 4 || x.dims()[1] != c {
            return Err(Error::bad(
                "perceptual_loss",
                format!(
                    "image batch {:?} must be [N, {c}, H, W]: the feature network takes {c} input \
                     channels",
                    x.shape()
                ),
            ));
        }
        let x = x
            .to_dtype(self.scale.dtype())?
            .mul(&self.scale)?
            .add(&self.shift)?;
        Ok(self.net.forward_features(&x, Mode::EVAL)?.0)
    }

    /// The weighted feature distance between `output` (differentiated) and `target` (not); a scalar
    /// in the network's dtype.
    pub fn loss(&self, output: &Tensor, target: &Tensor) -> Result<Tensor> {
        if output.shape() != target.shape() {
            return Err(Error::shape(
                "perceptual_loss",
                output.shape(),
                target.shape(),
                "output and target must have the same shape",
            ));
        }
        let target_feats = no_grad(|| self.features(&target.detach()))?;
        let feats = self.features(output)?;
        let mut total: Option<Tensor> = None;
        for ((f, t), &w) in feats
            .iter()
            .zip(&target_feats)
            .zip(&self.config.tap_weights)
        {
            if w == 0.0 {
                continue;
            }
            let d = match self.config.distance {
                FeatureDistance::L1 => f.l1_loss(t)?,
                FeatureDistance::Mse => f.mse_loss(t)?,
            }
            .scale(w)?;
            total = Some(match total {
                Some(acc) => acc.add(&d)?,
                None => d,
            });
        }
        Ok(total.expect("a non-zero tap weight (checked in new)"))
    }
}
