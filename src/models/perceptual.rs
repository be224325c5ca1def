//! A perceptual (feature-matching) loss over a frozen network, for image-to-image training (pix2pix
//! with a perceptual term, as in Johnson et al. 2016):
//!
//! `loss(x̂, y) = Σ_t w_t · mean(d(φ_t(norm(x̂)), φ_t(norm(y))))`
//!
//! - `φ_t` are the taps of the feature network (`FeatureNet`): for an engine ResNet the five of
//!   `ResNet::forward_features` (stem output, then the end of layer1 … layer4), computed in eval
//!   mode (BN running statistics; nothing is updated); for AdaIN's normalised VGG-19 (ImageNet-
//!   trained, `VggEncoder`) relu1_1, relu2_1, relu3_1 and relu4_1, the classic perceptual taps;
//! - `norm` maps the stated `InputRange` to [0, 1] and then normalises per channel with the mean/std
//!   the network was trained with (ImageNet's for torchvision weights, the checkpoint's own for an
//!   engine checkpoint, built by `train::checkpoint::perceptual_loss`; none for the VGG, whose first
//!   1×1 conv does its preprocessing from [0, 1] RGB). One-channel images given to the VGG are
//!   repeated to RGB;
//! - `d` is `|·|` (L1) or `(·)²` (MSE), averaged over all elements of the tap; `w_t` a weight per tap
//!   (taps of weight 0 are skipped); there are exactly as many weights as the network has taps.
//!
//! Invariants: the network is frozen (`ResNet::freeze`; the VGG's parameters are buffers already):
//! no gradient is computed for its parameters and no optimizer sees them, while gradients flow to
//! the output image. The target's features are computed under `no_grad` (the target never receives
//! a gradient). Output and target must have the network's input channels (or one channel for the
//! VGG); a mismatch is an error naming both. The loss is computed in the network's dtype (inputs are
//! cast).

use crate::models::{ResNet, ResNetConfig, VggEncoder};
use crate::nn::init::Init;
use crate::nn::{named_params, state, Mode, Module};
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
    /// Weights of the taps, one per tap of the network (`FeatureNet::taps`): stem, layer1 … layer4
    /// for a ResNet; relu1_1 … relu4_1 for the VGG. At least one must be non-zero.
    pub tap_weights: Vec<f64>,
}

impl Default for PerceptualConfig {
    /// [−1, 1] inputs, L1, the five taps of a ResNet weighted 1.
    fn default() -> Self {
        PerceptualConfig {
            range: InputRange::MinusOneToOne,
            distance: FeatureDistance::L1,
            tap_weights: vec![1.0; RESNET_TAPS],
        }
    }
}

/// Taps of a ResNet (stem, layer1 … layer4) and of the VGG (relu1_1 … relu4_1).
pub const RESNET_TAPS: usize = 5;
pub const VGG_TAPS: usize = 4;

/// The frozen network whose feature maps the loss compares.
pub enum FeatureNet {
    /// An engine or torchvision ResNet: five taps (boxed: a ResNet is far larger than the VGG).
    ResNet(Box<ResNet>),
    /// AdaIN's normalised VGG-19 through relu4_1: four taps, RGB in [0, 1].
    Vgg(VggEncoder),
}

impl FeatureNet {
    /// Channels of the images the network itself takes.
    pub fn in_channels(&self) -> usize {
        match self {
            FeatureNet::ResNet(net) => net.config.in_channels,
            FeatureNet::Vgg(_) => 3,
        }
    }

    /// How many feature maps `features` returns.
    pub fn taps(&self) -> usize {
        match self {
            FeatureNet::ResNet(_) => RESNET_TAPS,
            FeatureNet::Vgg(_) => VGG_TAPS,
        }
    }

    /// The network as a module (for its parameters).
    pub fn module(&self) -> &dyn Module {
        match self {
            FeatureNet::ResNet(net) => net.as_ref(),
            FeatureNet::Vgg(net) => net,
        }
    }

    /// The taps of normalised images.
    fn features(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        match self {
            FeatureNet::ResNet(net) => Ok(net.forward_features(x, Mode::EVAL)?.0),
            FeatureNet::Vgg(net) => Ok(net.features(x)?.to_vec()),
        }
    }
}

pub struct PerceptualLoss {
    config: PerceptualConfig,
    net: FeatureNet,
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
        net.freeze();
        Self::over(FeatureNet::ResNet(Box::new(net)), mean, std, config)
    }

    /// Over AdaIN's normalised VGG-19 (`vgg_normalised` converted by
    /// tools/convert_adain_weights.py): taps relu1_1 … relu4_1, no input normalisation (the net's
    /// first 1×1 conv does it from [0, 1] RGB).
    pub fn from_vgg(
        path: &Path,
        config: PerceptualConfig,
        dtype: DType,
        device: Device,
    ) -> Result<PerceptualLoss> {
        Self::with_vgg(VggEncoder::load(path, dtype, device)?, config)
    }

    /// Over a VGG encoder already built (frozen by construction).
    pub fn with_vgg(vgg: VggEncoder, config: PerceptualConfig) -> Result<PerceptualLoss> {
        Self::over(FeatureNet::Vgg(vgg), &[0.0], &[1.0], config)
    }

    fn over(
        net: FeatureNet,
        mean: &[f64],
        std: &[f64],
        config: PerceptualConfig,
    ) -> Result<PerceptualLoss> {
        const OP: &str = "perceptual_loss";
        let c = net.in_channels();
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
        if w.len() != net.taps() {
            return Err(Error::bad(
                OP,
                format!(
                    "{} tap weights {w:?} for a network with {} taps",
                    w.len(),
                    net.taps()
                ),
            ));
        }
        if w.iter().any(|v| !v.is_finite()) || w.iter().all(|&v| v == 0.0) {
            return Err(Error::bad(
                OP,
                format!("tap weights {w:?} must be finite and not all zero"),
            ));
        }
        let first = named_params(net.module())
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
    pub fn network(&self) -> &dyn Module {
        self.net.module()
    }

    /// Channels of the images `loss` takes: the network's, or also 1 for the VGG.
    pub fn takes_channels(&self, channels: usize) -> bool {
        channels == self.net.in_channels()
            || (channels == 1 && matches!(self.net, FeatureNet::Vgg(_)))
    }

    /// Channels of the images the network itself takes.
    pub fn in_channels(&self) -> usize {
        self.net.in_channels()
    }

    /// The feature maps of `x` (images in the configured range), one per tap, recorded for
    /// backward when `x` requires grad.
    pub fn features(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let c = self.net.in_channels();
        if x.rank() != 4 || !self.takes_channels(x.dims()[1]) {
            return Err(Error::bad(
                "perceptual_loss",
                format!(
                    "image batch {:?} must be [N, {c}, H, W]{}: the feature network takes {c} \
                     input channels",
                    x.shape(),
                    if matches!(self.net, FeatureNet::Vgg(_)) {
                        " (or one grey channel)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        let mut x = x.to_dtype(self.scale.dtype())?;
        if x.dims()[1] != c {
            // One channel into the VGG: grey as RGB.
            x = Tensor::concat(&[&x, &x, &x], 1)?;
        }
        let x = x.mul(&self.scale)?.add(&self.shift)?;
        self.net.features(&x)
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
        Ok(total.expect("a non-zero tap weight (checked in `over`)"))
    }
}
