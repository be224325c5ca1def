//! The pix2pix U-Net generator (Isola et al. 2017; `UnetGenerator` of junyanz/pytorch-CycleGAN-and-
//! pix2pix with `norm_layer = BatchNorm2d`; `unet_256` is `num_downs = 8`, `ngf = 64`).
//!
//! Structure, level `i = 0` (outermost) … `L − 1 = num_downs − 1` (innermost):
//! - channels: level `i` goes down to `ngf · 2^min(i, 3)` channels (64, 128, 256, 512, 512, … for
//!   ngf 64) from `in_channels` (level 0) or the level above;
//! - down: `[LeakyReLU 0.2 unless i = 0] → Conv 4×4 s2 p1 → [BN unless i = 0 or innermost]`;
//! - up: `ReLU → ConvTranspose 4×4 s2 p1 → BN` back to the level's input channels (`out_channels`
//!   and `Tanh` instead of BN at level 0); its input is the innermost down output, or the
//!   concatenation `[skip, up of the level below]` along channels;
//! - dropout 0.5 after the up BN of the intermediate levels `4 ≤ i < L − 1` (the reference's
//!   `num_downs − 5` blocks with `use_dropout`, three for unet_256) when `UnetConfig::dropout`;
//! - no conv has a bias except the outermost up conv (the reference's `use_bias = False` for
//!   BatchNorm; this includes the outermost and innermost down convs, which no BN follows);
//! - the skip of level `i ≥ 1` is that level's input. (The reference's in-place LeakyReLU turns its
//!   skips into `leaky_relu(input)`, but the only consumer of a skip is the next up path's ReLU and
//!   `relu(leaky_relu(v)) = relu(v)`, so outputs and gradients are the same.)
//!
//! For `num_downs ≥ 5` this is the reference layer for layer; smaller `num_downs` (≥ 2) keep the same
//! channel rule for small images. Inputs must be `[N, in_channels, H, W]` with H and W multiples of
//! `2^num_downs`. Initialisation is the reference's `init_type normal`, gain 0.02 (`init_normal`).
//!
//! Parameter names (readable, not the reference's nested `model.model.1.model.3…`; the fixture
//! generator tools/fixtures/gen_pix2pix.py holds the mapping): `down.{i}.conv.weight`,
//! `down.{i}.bn.{weight,bias,running_mean,running_var}`, `up.{i}.conv.weight`, `up.0.conv.bias`,
//! `up.{i}.bn.*`.

use crate::nn::init::{init_normal, Init};
use crate::nn::{join, BatchNorm2d, Conv2d, ConvTranspose2d, Dropout, Mode, Module, Param};
use crate::ops::conv::{Conv2dParams, ConvTranspose2dParams};
use crate::{Error, Result, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnetConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    /// Number of stride-2 levels (8 for 256 px, the bottleneck then being 1×1); at least 2.
    pub num_downs: usize,
    /// Channels of the outermost level (64 in pix2pix).
    pub ngf: usize,
    /// Dropout 0.5 in the intermediate levels (pix2pix trains with it).
    pub dropout: bool,
}

impl UnetConfig {
    /// pix2pix's `unet_256`: 8 levels, ngf 64, dropout on.
    pub fn unet_256(in_channels: usize, out_channels: usize) -> UnetConfig {
        UnetConfig {
            in_channels,
            out_channels,
            num_downs: 8,
            ngf: 64,
            dropout: true,
        }
    }
    /// Channels after level `i`'s down conv.
    fn inner(&self, i: usize) -> usize {
        self.ngf << i.min(3)
    }
}

/// One level: the down conv (+BN), the up conv (+BN), and the up path's dropout.
struct Level {
    down: Conv2d,
    down_bn: Option<BatchNorm2d>,
    up: ConvTranspose2d,
    up_bn: Option<BatchNorm2d>,
    dropout: Option<Dropout>,
}

pub struct UnetGenerator {
    pub config: UnetConfig,
    levels: Vec<Level>,
}

impl UnetGenerator {
    pub fn new(config: UnetConfig, init: &mut Init) -> Result<UnetGenerator> {
        let c = &config;
        if c.num_downs < 2 || c.in_channels == 0 || c.out_channels == 0 || c.ngf == 0 {
            return Err(Error::bad(
                "unet",
                format!(
                    "num_downs {} must be ≥ 2 and in_channels {}, out_channels {}, ngf {} positive",
                    c.num_downs, c.in_channels, c.out_channels, c.ngf
                ),
            ));
        }
        let last = c.num_downs - 1;
        let mut levels = Vec::with_capacity(c.num_downs);
        for i in 0..c.num_downs {
            // Level i maps its input's channels (cin) to `inner` and back to `cout`.
            let inner = c.inner(i);
            let (cin, cout) = match i {
                0 => (c.in_channels, c.out_channels),
                _ => (c.inner(i - 1), c.inner(i - 1)),
            };
            let down =
                Conv2d::new_default_init(init, cin, inner, 4, Conv2dParams::new(2, 1), false)?;
            let down_bn = if i > 0 && i < last {
                Some(BatchNorm2d::new(init, inner, 1.0)?)
            } else {
                None
            };
            let up_in = if i == last { inner } else { 2 * inner };
            let up = ConvTranspose2d::new(
                init,
                up_in,
                cout,
                4,
                ConvTranspose2dParams::new(2, 1),
                i == 0,
            )?;
            let up_bn = if i > 0 {
                Some(BatchNorm2d::new(init, cout, 1.0)?)
            } else {
                None
            };
            let dropout =
                (c.dropout && i >= 4 && i < last).then(|| Dropout::new(0.5, init.next_seed()));
            levels.push(Level {
                down,
                down_bn,
                up,
                up_bn,
                dropout,
            });
        }
        let net = UnetGenerator { config, levels };
        init_normal(init, &net, 0.02)?;
        Ok(net)
    }

    /// Levels whose up path applies dropout (when `config.dropout`), outermost = 0.
    pub fn dropout_levels(&self) -> Vec<usize> {
        (0..self.levels.len())
            .filter(|&i| self.levels[i].dropout.is_some())
            .collect()
    }

    /// Makes the next forward's dropout masks depend only on (initialisation seed, `step`): each
    /// dropout layer's call counter is set to `step`. Training loops call it before every forward so
    /// that a resumed run draws the masks an uninterrupted one would.
    pub fn set_dropout_step(&self, step: u64) {
        for d in self.levels.iter().filter_map(|l| l.dropout.as_ref()) {
            d.set_calls(step);
        }
    }

    fn check_input(&self, x: &Tensor) -> Result<()> {
        let c = &self.config;
        let scale = 1usize << c.num_downs;
        match *x.dims() {
            [_, ch, h, w] if ch == c.in_channels && h % scale == 0 && w % scale == 0 => Ok(()),
            [_, ch, _, _] if ch != c.in_channels => Err(Error::bad(
                "unet",
                format!(
                    "input {:?} has {ch} channels; this generator takes {}",
                    x.shape(),
                    c.in_channels
                ),
            )),
            [_, _, h, w] => Err(Error::bad(
                "unet",
                format!(
                    "input is {h}×{w}; with num_downs {} height and width must be multiples of {scale}",
                    c.num_downs
                ),
            )),
            _ => Err(Error::bad(
                "unet",
                format!("expected an [N, C, H, W] input, got {:?}", x.shape()),
            )),
        }
    }
}

impl Module for UnetGenerator {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.check_input(x)?;
        // Down: downs[i] is level i's output, which is level i+1's input and skip.
        let mut downs: Vec<Tensor> = Vec::with_capacity(self.levels.len());
        for l in &self.levels {
            let h = match downs.last() {
                Some(prev) => prev.leaky_relu(0.2)?,
                None => x.clone(),
            };
            let h = l.down.forward(&h, mode)?;
            downs.push(match &l.down_bn {
                Some(bn) => bn.forward(&h, mode)?,
                None => h,
            });
        }
        // Up, innermost first; every level but the outermost ends in [skip, up] along channels.
        let mut h = downs.pop().expect("num_downs ≥ 2");
        for l in self.levels[1..].iter().rev() {
            let mut u = l.up.forward(&h.relu()?, mode)?;
            if let Some(bn) = &l.up_bn {
                u = bn.forward(&u, mode)?;
            }
            if let Some(d) = &l.dropout {
                u = d.forward(&u, mode)?;
            }
            let skip = downs.pop().expect("one skip per inner level");
            h = Tensor::concat(&[&skip, &u], 1)?;
        }
        self.levels[0].up.forward(&h.relu()?, mode)?.tanh()
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        for (i, l) in self.levels.iter().enumerate() {
            let down = join(prefix, &format!("down.{i}"));
            l.down.visit(&join(&down, "conv"), f);
            if let Some(bn) = &l.down_bn {
                bn.visit(&join(&down, "bn"), f);
            }
        }
        for (i, l) in self.levels.iter().enumerate() {
            let up = join(prefix, &format!("up.{i}"));
            l.up.visit(&join(&up, "conv"), f);
            if let Some(bn) = &l.up_bn {
                bn.visit(&join(&up, "bn"), f);
            }
        }
    }
}
