//! ResNet-18/34/50/101 with the variants of "Bag of Tricks for Image Classification" (He et al. 2018):
//! A (original: stride in the first 1×1 of a bottleneck), B (stride in the 3×3; torchvision's v1.5),
//! C (B with a stem of three 3×3 convs, 32-32-64·w/64), D (C with a 2×2 s2 average pool before the 1×1
//! projection of downsampling shortcuts); a pre-activation variant (He et al. 2016, BN-ReLU before
//! each conv); zero-γ (the last BN of each residual branch starts at γ = 0); a small-image stem
//! (3×3 s1, no max pool) for 28–32 px inputs; any width, input channels and class count.
//!
//! Parameter names follow torchvision (`conv1.weight`, `layer1.0.conv2.weight`,
//! `layer2.0.downsample.0.weight`, `fc.bias`, …) so a torchvision ResNet state dict loads 1:1 into
//! variant B. The deep stem of C/D and the pooled shortcut of D follow timm's names (`conv1.0`,
//! `conv1.3`, `conv1.6`; `downsample.1`/`downsample.2` after the pool). Post-activation blocks use
//! the fused `batch_norm_relu` and `batch_norm_add_relu` ops.

use crate::nn::init::Init;
use crate::nn::{join, BatchNorm2d, Conv2d, Linear, Mode, Module, Param};
use crate::ops::conv::Conv2dParams;
use crate::ops::pool::Pool2dParams;
use crate::{Error, Result, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Variant {
    A,
    B,
    C,
    D,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// 18, 34, 50 or 101.
    pub depth: usize,
    pub variant: Variant,
    pub preact: bool,
    pub zero_gamma: bool,
    /// 3×3 s1 stem and no max pool, for 28–32 px images.
    pub small_input: bool,
    pub in_channels: usize,
    pub num_classes: usize,
    /// Channels of the first stage (64 in the paper).
    pub width: usize,
}

impl ResNetConfig {
    pub fn resnet50(num_classes: usize) -> Self {
        ResNetConfig {
            depth: 50,
            variant: Variant::B,
            preact: false,
            zero_gamma: false,
            small_input: false,
            in_channels: 3,
            num_classes,
            width: 64,
        }
    }
    fn layout(&self) -> Result<(bool, [usize; 4])> {
        Ok(match self.depth {
            18 => (false, [2, 2, 2, 2]),
            34 => (false, [3, 4, 6, 3]),
            50 => (true, [3, 4, 6, 3]),
            101 => (true, [3, 4, 23, 3]),
            d => {
                return Err(Error::bad(
                    "resnet",
                    format!("depth {d} is not one of 18, 34, 50, 101"),
                ))
            }
        })
    }
}

fn conv(init: &mut Init, cin: usize, cout: usize, k: usize, stride: usize) -> Result<Conv2d> {
    Conv2d::new(init, cin, cout, k, Conv2dParams::new(stride, k / 2), false)
}

/// The projection on a shortcut whose shape changes.
enum Downsample {
    /// 1×1 conv with stride, then BN (`downsample.0`, `downsample.1`).
    Conv {
        conv: Conv2d,
        bn: Option<BatchNorm2d>,
    },
    /// ResNet-D: 2×2 s2 average pool, then 1×1 conv, then BN (`downsample.1`, `downsample.2`).
    PoolConv {
        pool_stride: usize,
        conv: Conv2d,
        bn: Option<BatchNorm2d>,
    },
}

impl Downsample {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let (h, conv, bn) = match self {
            Downsample::Conv { conv, bn } => (x.clone(), conv, bn),
            Downsample::PoolConv {
                pool_stride,
                conv,
                bn,
            } => {
                let h = if *pool_stride > 1 {
                    x.avg_pool2d(Pool2dParams::new(2, 2, 0).ceil(), false)?
                } else {
                    x.clone()
                };
                (h, conv, bn)
            }
        };
        let y = conv.forward(&h, mode)?;
        match bn {
            Some(bn) => bn.forward(&y, mode),
            None => Ok(y),
        }
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let (conv, bn) = match self {
            Downsample::Conv { conv, bn } | Downsample::PoolConv { conv, bn, .. } => (conv, bn),
        };
        let mut ps = conv.params_mut();
        ps.extend(bn.iter_mut().flat_map(BatchNorm2d::params_mut));
        ps
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        let (first, conv, bn) = match self {
            Downsample::Conv { conv, bn } => (0, conv, bn),
            Downsample::PoolConv { conv, bn, .. } => (1, conv, bn),
        };
        conv.visit(&join(prefix, &format!("downsample.{first}")), f);
        if let Some(bn) = bn {
            bn.visit(&join(prefix, &format!("downsample.{}", first + 1)), f);
        }
    }
}

/// One residual block (basic or bottleneck, post- or pre-activation).
struct Block {
    convs: Vec<Conv2d>,
    /// One BN per conv. Pre-activation blocks normalise each conv's *input* instead.
    bns: Vec<BatchNorm2d>,
    downsample: Option<Downsample>,
    preact: bool,
}

impl Block {
    #[allow(clippy::too_many_arguments)]
    fn new(
        init: &mut Init,
        cfg: &ResNetConfig,
        bottleneck: bool,
        cin: usize,
        planes: usize,
        stride: usize,
    ) -> Result<Block> {
        let expansion = if bottleneck { 4 } else { 1 };
        let cout = planes * expansion;
        let convs = if bottleneck {
            let (s1, s3) = if cfg.variant == Variant::A {
                (stride, 1)
            } else {
                (1, stride)
            };
            vec![
                conv(init, cin, planes, 1, s1)?,
                conv(init, planes, planes, 3, s3)?,
                conv(init, planes, cout, 1, 1)?,
            ]
        } else {
            vec![
                conv(init, cin, planes, 3, stride)?,
                conv(init, planes, planes, 3, 1)?,
            ]
        };
        let n = convs.len();
        let mut bns = Vec::with_capacity(n);
        for (i, c) in convs.iter().enumerate() {
            let channels = if cfg.preact {
                c.weight.tensor.dims()[1]
            } else {
                c.weight.tensor.dims()[0]
            };
            let last = i == n - 1;
            bns.push(BatchNorm2d::new(
                init,
                channels,
                if last && cfg.zero_gamma && !cfg.preact {
                    0.0
                } else {
                    1.0
                },
            )?);
        }
        let downsample = if stride != 1 || cin != cout {
            let bn = if cfg.preact {
                None
            } else {
                Some(BatchNorm2d::new(init, cout, 1.0)?)
            };
            Some(if cfg.variant == Variant::D {
                Downsample::PoolConv {
                    pool_stride: stride,
                    conv: conv(init, cin, cout, 1, 1)?,
                    bn,
                }
            } else {
                Downsample::Conv {
                    conv: conv(init, cin, cout, 1, stride)?,
                    bn,
                }
            })
        } else {
            None
        };
        Ok(Block {
            convs,
            bns,
            downsample,
            preact: cfg.preact,
        })
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let n = self.convs.len();
        if self.preact {
            // x → BN-ReLU → conv1 → BN-ReLU → conv2 … ; the projection sees the pre-activated input.
            let pre = x.batch_norm_relu(&self.bns[0].args(mode))?;
            let shortcut = match &self.downsample {
                Some(d) => d.forward(&pre, mode)?,
                None => x.clone(),
            };
            let mut h = self.convs[0].forward(&pre, mode)?;
            for i in 1..n {
                h = h.batch_norm_relu(&self.bns[i].args(mode))?;
                h = self.convs[i].forward(&h, mode)?;
            }
            return h.add(&shortcut);
        }
        let shortcut = match &self.downsample {
            Some(d) => d.forward(x, mode)?,
            None => x.clone(),
        };
        let mut h = x.clone();
        for i in 0..n - 1 {
            h = self.convs[i]
                .forward(&h, mode)?
                .batch_norm_relu(&self.bns[i].args(mode))?;
        }
        let h = self.convs[n - 1].forward(&h, mode)?;
        h.batch_norm_add_relu(&shortcut, &self.bns[n - 1].args(mode))
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut ps: Vec<&mut Param> = self.convs.iter_mut().flat_map(Conv2d::params_mut).collect();
        ps.extend(self.bns.iter_mut().flat_map(BatchNorm2d::params_mut));
        ps.extend(self.downsample.iter_mut().flat_map(Downsample::params_mut));
        ps
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        for (i, (c, b)) in self.convs.iter().zip(&self.bns).enumerate() {
            c.visit(&join(prefix, &format!("conv{}", i + 1)), f);
            b.visit(&join(prefix, &format!("bn{}", i + 1)), f);
        }
        if let Some(d) = &self.downsample {
            d.visit(prefix, f);
        }
    }
}

enum Stem {
    /// 7×7 s2 (or 3×3 s1 for small inputs) conv `conv1`.
    Single(Conv2d),
    /// Three 3×3 convs (C/D): `conv1.0`, BN `conv1.1`, `conv1.3`, BN `conv1.4`, `conv1.6`.
    Deep(Conv2d, BatchNorm2d, Conv2d, BatchNorm2d, Conv2d),
}

pub struct ResNet {
    pub config: ResNetConfig,
    stem: Stem,
    /// `bn1` after the stem (post-activation), or the final BN before pooling (pre-activation).
    bn1: BatchNorm2d,
    stages: Vec<Vec<Block>>,
    fc: Linear,
}

impl ResNet {
    pub fn new(config: ResNetConfig, init: &mut Init) -> Result<ResNet> {
        let (bottleneck, counts) = config.layout()?;
        if config.in_channels == 0 || config.num_classes == 0 || config.width < 4 {
            return Err(Error::bad(
                "resnet",
                format!(
                    "in_channels {}, classes {} and width {} must be positive (width ≥ 4)",
                    config.in_channels, config.num_classes, config.width
                ),
            ));
        }
        let w = config.width;
        let cin = config.in_channels;
        let stem = if config.small_input {
            Stem::Single(conv(init, cin, w, 3, 1)?)
        } else if matches!(config.variant, Variant::C | Variant::D) {
            let half = (w / 2).max(1);
            Stem::Deep(
                conv(init, cin, half, 3, 2)?,
                BatchNorm2d::new(init, half, 1.0)?,
                conv(init, half, half, 3, 1)?,
                BatchNorm2d::new(init, half, 1.0)?,
                conv(init, half, w, 3, 1)?,
            )
        } else {
            Stem::Single(Conv2d::new(
                init,
                cin,
                w,
                7,
                Conv2dParams::new(2, 3),
                false,
            )?)
        };
        let mut stages = Vec::new();
        let mut channels = w;
        let expansion = if bottleneck { 4 } else { 1 };
        for (s, &count) in counts.iter().enumerate() {
            let planes = w << s;
            let mut blocks = Vec::new();
            for b in 0..count {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                blocks.push(Block::new(
                    init, &config, bottleneck, channels, planes, stride,
                )?);
                channels = planes * expansion;
            }
            stages.push(blocks);
        }
        let bn1 = BatchNorm2d::new(init, if config.preact { channels } else { w }, 1.0)?;
        let fc = Linear::new(init, channels, config.num_classes, true)?;
        Ok(ResNet {
            config,
            stem,
            bn1,
            stages,
            fc,
        })
    }

    /// Freezes every parameter (`Param::freeze`): the network stays usable as a fixed feature
    /// extractor (gradients still flow to its input) but backward computes no gradient for its
    /// weights and optimizers built from `named_params` find nothing to train.
    pub fn freeze(&mut self) {
        for p in self.params_mut() {
            p.freeze();
        }
    }

    /// Stores every conv weight channels-last (PyTorch's `model.to(memory_format=channels_last)`),
    /// so a channels-last forward on CUDA converts no weight per step and the optimizer sees weight
    /// gradients in their parameters' format. Call it before building the optimizer.
    pub fn to_channels_last(&mut self) -> Result<()> {
        for p in self.params_mut() {
            p.to_format(crate::MemoryFormat::ChannelsLast)?;
        }
        Ok(())
    }

    /// Every parameter and buffer, to change in place.
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut ps: Vec<&mut Param> = match &mut self.stem {
            Stem::Single(c) => c.params_mut(),
            Stem::Deep(c0, b1, c3, b4, c6) => {
                let mut v = c0.params_mut();
                v.extend(b1.params_mut());
                v.extend(c3.params_mut());
                v.extend(b4.params_mut());
                v.extend(c6.params_mut());
                v
            }
        };
        ps.extend(self.bn1.params_mut());
        ps.extend(self.stages.iter_mut().flatten().flat_map(Block::params_mut));
        ps.extend(self.fc.params_mut());
        ps
    }

    /// Features after the stem and after each stage (the taps a perceptual loss uses), and the logits.
    pub fn forward_features(&self, x: &Tensor, mode: Mode) -> Result<(Vec<Tensor>, Tensor)> {
        let mut taps = Vec::with_capacity(5);
        let mut h = match &self.stem {
            Stem::Single(c) => c.forward(x, mode)?,
            Stem::Deep(c0, b1, c3, b4, c6) => {
                let h = c0.forward(x, mode)?.batch_norm_relu(&b1.args(mode))?;
                let h = c3.forward(&h, mode)?.batch_norm_relu(&b4.args(mode))?;
                c6.forward(&h, mode)?
            }
        };
        if !self.config.preact {
            h = h.batch_norm_relu(&self.bn1.args(mode))?;
        }
        if !self.config.small_input {
            h = h.max_pool2d(Pool2dParams::new(3, 2, 1))?;
        }
        taps.push(h.clone());
        for stage in &self.stages {
            for block in stage {
                h = block.forward(&h, mode)?;
            }
            taps.push(h.clone());
        }
        if self.config.preact {
            h = h.batch_norm_relu(&self.bn1.args(mode))?;
        }
        let pooled = h.global_avg_pool2d()?.flatten_from(1)?;
        let logits = self.fc.forward(&pooled, mode)?;
        Ok((taps, logits))
    }
}

impl Module for ResNet {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        Ok(self.forward_features(x, mode)?.1)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        match &self.stem {
            Stem::Single(c) => c.visit(&join(prefix, "conv1"), f),
            Stem::Deep(c0, b1, c3, b4, c6) => {
                c0.visit(&join(prefix, "conv1.0"), f);
                b1.visit(&join(prefix, "conv1.1"), f);
                c3.visit(&join(prefix, "conv1.3"), f);
                b4.visit(&join(prefix, "conv1.4"), f);
                c6.visit(&join(prefix, "conv1.6"), f);
            }
        }
        self.bn1.visit(&join(prefix, "bn1"), f);
        for (s, stage) in self.stages.iter().enumerate() {
            for (b, block) in stage.iter().enumerate() {
                block.visit(&join(prefix, &format!("layer{}.{b}", s + 1)), f);
            }
        }
        self.fc.visit(&join(prefix, "fc"), f);
    }
}
