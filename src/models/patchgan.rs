//! The pix2pix PatchGAN discriminator (`NLayerDiscriminator` of junyanz/pytorch-CycleGAN-and-pix2pix
//! with `norm_layer = BatchNorm2d`; `n_layers = 3`, `ndf = 64` is the 70×70 PatchGAN).
//!
//! Layers, all 4×4 convs with padding 1, each but the last followed by LeakyReLU 0.2:
//! - `conv0`: `in_channels → ndf`, stride 2, with bias, no BN;
//! - `conv{n}`, `n = 1 … n_layers − 1`: `ndf·min(2^(n−1), 8) → ndf·min(2^n, 8)`, stride 2, BN `bn{n}`;
//! - `conv{n_layers}`: `→ ndf·min(2^n_layers, 8)`, stride 1, BN `bn{n_layers}`;
//! - `conv{n_layers+1}`: `→ 1` channel, stride 1, with bias: one logit per patch (no sigmoid; pair
//!   it with `bce_with_logits` or an MSE/LSGAN loss).
//!
//! Convs followed by BN have no bias (the reference's `use_bias = False` for BatchNorm). The output
//! for an `H×W` input is `[N, 1, H', W']`, each logit seeing `receptive_field()` pixels (70 for three
//! layers). pix2pix conditions the discriminator on the input image: `forward_pair(a, b)` runs it on
//! the channel concatenation `[a, b]` (input first, then real or generated output), so `in_channels`
//! must be the sum of both. Initialisation is pix2pix's `normal` with gain 0.02.

use crate::nn::init::{init_normal, Init};
use crate::nn::{join, BatchNorm2d, Conv2d, Mode, Module, Param};
use crate::ops::conv::Conv2dParams;
use crate::{Error, Result, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchGanConfig {
    /// Channels of the discriminator's input: input image + output image for pix2pix.
    pub in_channels: usize,
    /// Channels of the first conv (64 in pix2pix).
    pub ndf: usize,
    /// Stride-2 convs after the first one, plus one: 3 gives the 70×70 PatchGAN; fewer for small
    /// images.
    pub n_layers: usize,
}

impl PatchGanConfig {
    /// The 70×70 PatchGAN of pix2pix: n_layers 3, ndf 64.
    pub fn pix2pix(in_channels: usize) -> PatchGanConfig {
        PatchGanConfig {
            in_channels,
            ndf: 64,
            n_layers: 3,
        }
    }
}

pub struct PatchGan {
    pub config: PatchGanConfig,
    convs: Vec<Conv2d>,
    /// `bns[n]` follows `convs[n]`; none after the first and the last conv.
    bns: Vec<Option<BatchNorm2d>>,
}

impl PatchGan {
    pub fn new(config: PatchGanConfig, init: &mut Init) -> Result<PatchGan> {
        if config.in_channels == 0 || config.ndf == 0 {
            return Err(Error::bad(
                "patchgan",
                format!(
                    "in_channels {} and ndf {} must be positive",
                    config.in_channels, config.ndf
                ),
            ));
        }
        let n_layers = config.n_layers;
        let width = |n: usize| config.ndf << n.min(3);
        let mut convs = Vec::with_capacity(n_layers + 2);
        let mut bns = Vec::with_capacity(n_layers + 2);
        for n in 0..=n_layers + 1 {
            let cin = if n == 0 {
                config.in_channels
            } else {
                width(n - 1)
            };
            let cout = if n == n_layers + 1 { 1 } else { width(n) };
            let stride = if n < n_layers { 2 } else { 1 };
            let normed = n > 0 && n <= n_layers;
            convs.push(Conv2d::new_default_init(
                init,
                cin,
                cout,
                4,
                Conv2dParams::new(stride, 1),
                !normed,
            )?);
            bns.push(if normed {
                Some(BatchNorm2d::new(init, cout, 1.0)?)
            } else {
                None
            });
        }
        let net = PatchGan { config, convs, bns };
        init_normal(init, &net, 0.02)?;
        Ok(net)
    }

    /// The discriminator on `[a, b]` concatenated along channels (pix2pix: input, then output).
    pub fn forward_pair(&self, a: &Tensor, b: &Tensor, mode: Mode) -> Result<Tensor> {
        if a.rank() != 4 || b.rank() != 4 || a.dims()[1] + b.dims()[1] != self.config.in_channels {
            return Err(Error::bad(
                "patchgan",
                format!(
                    "forward_pair got {:?} and {:?}; their channels must add up to {}",
                    a.shape(),
                    b.shape(),
                    self.config.in_channels
                ),
            ));
        }
        self.forward(&Tensor::concat(&[a, b], 1)?, mode)
    }

    /// Side of the input square that one output logit sees (70 for n_layers 3).
    pub fn receptive_field(&self) -> usize {
        self.convs
            .iter()
            .rev()
            .fold(1, |r, c| (r - 1) * c.params.stride.0 + 4)
    }
}

impl Module for PatchGan {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        if x.rank() != 4 || x.dims()[1] != self.config.in_channels {
            return Err(Error::bad(
                "patchgan",
                format!(
                    "input {:?} must be [N, {}, H, W] (for pix2pix: input and output images \
                     concatenated along channels)",
                    x.shape(),
                    self.config.in_channels
                ),
            ));
        }
        let last = self.convs.len() - 1;
        let mut h = x.clone();
        for (n, (conv, bn)) in self.convs.iter().zip(&self.bns).enumerate() {
            h = conv.forward(&h, mode)?;
            if let Some(bn) = bn {
                h = bn.forward(&h, mode)?;
            }
            if n < last {
                h = h.leaky_relu(0.2)?;
            }
        }
        Ok(h)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        for (n, (conv, bn)) in self.convs.iter().zip(&self.bns).enumerate() {
            conv.visit(&join(prefix, &format!("conv{n}")), f);
            if let Some(bn) = bn {
                bn.visit(&join(prefix, &format!("bn{n}")), f);
            }
        }
    }
}
