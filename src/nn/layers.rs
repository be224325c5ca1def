//! The standard layers: Conv2d, ConvTranspose2d, BatchNorm2d, Linear, pooling, activations,
//! reflection padding, nearest upsampling, Flatten, Dropout and Sequential. Parameter names and
//! layouts are PyTorch's (`weight`, `bias`, `running_mean`, `running_var`; torchvision's integer
//! `num_batches_tracked` is not kept, and `nn::state` skips it when loading).

use super::init::Init;
use super::{join, Mode, Module, Param, ParamKind};
use crate::ops::batch_norm::BatchNormArgs;
use crate::ops::conv::{Conv2dParams, ConvTranspose2dParams};
use crate::ops::pool::Pool2dParams;
use crate::{DType, Result, Tensor};
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Conv2d {
    pub weight: Param,
    pub bias: Option<Param>,
    pub params: Conv2dParams,
}

impl Conv2d {
    /// Weight `[out, in/groups, k, k]`, Kaiming-normal (fan-out) as torchvision's ResNet initialises it.
    pub fn new(
        init: &mut Init,
        cin: usize,
        cout: usize,
        kernel: usize,
        params: Conv2dParams,
        bias: bool,
    ) -> Result<Conv2d> {
        let w = init.kaiming_normal_fan_out(&[cout, cin / params.groups.max(1), kernel, kernel])?;
        let b = if bias {
            Some(Param::new(
                init.default_bias(cout, cin / params.groups.max(1) * kernel * kernel)?,
                ParamKind::Bias,
            ))
        } else {
            None
        };
        Ok(Conv2d {
            weight: Param::new(w, ParamKind::Weight),
            bias: b,
            params,
        })
    }
    /// The weight and the bias, to change in place (e.g. `Param::freeze`).
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        std::iter::once(&mut self.weight)
            .chain(self.bias.as_mut())
            .collect()
    }
    /// Same shapes with PyTorch's default (uniform) initialisation, as pix2pix and AdaIN use.
    pub fn new_default_init(
        init: &mut Init,
        cin: usize,
        cout: usize,
        kernel: usize,
        params: Conv2dParams,
        bias: bool,
    ) -> Result<Conv2d> {
        let g = params.groups.max(1);
        let w = init.default_weight(&[cout, cin / g, kernel, kernel])?;
        let b = if bias {
            Some(Param::new(
                init.default_bias(cout, cin / g * kernel * kernel)?,
                ParamKind::Bias,
            ))
        } else {
            None
        };
        Ok(Conv2d {
            weight: Param::new(w, ParamKind::Weight),
            bias: b,
            params,
        })
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        x.conv2d(
            &self.weight.tensor,
            self.bias.as_ref().map(|b| &b.tensor),
            self.params,
        )
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        f(&join(prefix, "weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(&join(prefix, "bias"), b);
        }
    }
}

pub struct ConvTranspose2d {
    pub weight: Param,
    pub bias: Option<Param>,
    pub params: ConvTranspose2dParams,
}

impl ConvTranspose2d {
    /// Weight `[in, out/groups, k, k]` with PyTorch's default initialisation.
    pub fn new(
        init: &mut Init,
        cin: usize,
        cout: usize,
        kernel: usize,
        params: ConvTranspose2dParams,
        bias: bool,
    ) -> Result<ConvTranspose2d> {
        let g = params.groups.max(1);
        // PyTorch computes fan_in for ConvTranspose weights from dim 1 (out/groups · k · k).
        let fan_in = cout / g * kernel * kernel;
        let w = init.uniform(
            &[cin, cout / g, kernel, kernel],
            1.0 / (fan_in as f64).sqrt(),
        )?;
        let b = if bias {
            Some(Param::new(
                init.default_bias(cout, fan_in)?,
                ParamKind::Bias,
            ))
        } else {
            None
        };
        Ok(ConvTranspose2d {
            weight: Param::new(w, ParamKind::Weight),
            bias: b,
            params,
        })
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        x.conv_transpose2d(
            &self.weight.tensor,
            self.bias.as_ref().map(|b| &b.tensor),
            self.params,
        )
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        f(&join(prefix, "weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(&join(prefix, "bias"), b);
        }
    }
}

/// Batch normalisation over `[N, C, H, W]` (or `[N, C]`). γ, β and the running statistics are kept
/// in f32 for f16 and f32 activations, as mixed-precision training does (f64 for f64 models).
pub struct BatchNorm2d {
    pub weight: Param,
    pub bias: Param,
    pub running_mean: Param,
    pub running_var: Param,
    pub momentum: f64,
    pub eps: f64,
}

impl BatchNorm2d {
    /// γ = `gamma` (1, or 0 for zero-γ residual branches), β = 0, running mean 0 and var 1.
    pub fn new(init: &mut Init, channels: usize, gamma: f64) -> Result<BatchNorm2d> {
        // f32 statistics for f16/f32 models (as mixed precision keeps them); f64 for f64 models.
        let dtype = if init.dtype == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let f32_init = |v: f64| Tensor::full(v, vec![channels], dtype, init.device);
        Ok(BatchNorm2d {
            weight: Param::new(f32_init(gamma)?, ParamKind::Norm),
            bias: Param::new(f32_init(0.0)?, ParamKind::Norm),
            running_mean: Param::new(f32_init(0.0)?, ParamKind::Buffer),
            running_var: Param::new(f32_init(1.0)?, ParamKind::Buffer),
            momentum: 0.1,
            eps: 1e-5,
        })
    }

    /// γ, β and the running statistics, to change in place (e.g. `Param::freeze`).
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![
            &mut self.weight,
            &mut self.bias,
            &mut self.running_mean,
            &mut self.running_var,
        ]
    }

    /// Arguments for the batch-norm ops (also the fused BN+ReLU and BN+add+ReLU).
    pub fn args(&self, mode: Mode) -> BatchNormArgs<'_> {
        BatchNormArgs {
            weight: Some(&self.weight.tensor),
            bias: Some(&self.bias.tensor),
            running_mean: Some(&self.running_mean.tensor),
            running_var: Some(&self.running_var.tensor),
            training: mode.training,
            momentum: self.momentum,
            eps: self.eps,
        }
    }
}

impl Module for BatchNorm2d {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        x.batch_norm(&self.args(mode))
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        f(&join(prefix, "weight"), &self.weight);
        f(&join(prefix, "bias"), &self.bias);
        f(&join(prefix, "running_mean"), &self.running_mean);
        f(&join(prefix, "running_var"), &self.running_var);
    }
}

pub struct Linear {
    pub weight: Param,
    pub bias: Option<Param>,
}

impl Linear {
    /// Weight `[out, in]` and bias `[out]`, PyTorch's default initialisation.
    pub fn new(init: &mut Init, fan_in: usize, fan_out: usize, bias: bool) -> Result<Linear> {
        let w = init.default_weight(&[fan_out, fan_in])?;
        let b = if bias {
            Some(Param::new(
                init.default_bias(fan_out, fan_in)?,
                ParamKind::Bias,
            ))
        } else {
            None
        };
        Ok(Linear {
            weight: Param::new(w, ParamKind::Weight),
            bias: b,
        })
    }
    /// The weight and the bias, to change in place (e.g. `Param::freeze`).
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        std::iter::once(&mut self.weight)
            .chain(self.bias.as_mut())
            .collect()
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        x.linear(&self.weight.tensor, self.bias.as_ref().map(|b| &b.tensor))
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        f(&join(prefix, "weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(&join(prefix, "bias"), b);
        }
    }
}

pub struct Relu;
impl Module for Relu {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        x.relu()
    }
    fn visit(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &Param)) {}
}

pub struct MaxPool2d(pub Pool2dParams);
impl Module for MaxPool2d {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        x.max_pool2d(self.0)
    }
    fn visit(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &Param)) {}
}

pub struct AvgPool2d {
    pub params: Pool2dParams,
    pub count_include_pad: bool,
}
impl Module for AvgPool2d {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        x.avg_pool2d(self.params, self.count_include_pad)
    }
    fn visit(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &Param)) {}
}

/// `nn.ReflectionPad2d`: pads `(left, right, top, bottom)` by reflection (no parameters).
pub struct ReflectionPad2d(pub (usize, usize, usize, usize));
impl Module for ReflectionPad2d {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        x.reflection_pad2d(self.0)
    }
    fn visit(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &Param)) {}
}

/// `nn.Upsample(scale_factor=s, mode='nearest')` for an integer factor (no parameters).
pub struct UpsampleNearest2d(pub usize);
impl Module for UpsampleNearest2d {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        x.upsample_nearest2d(self.0)
    }
    fn visit(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &Param)) {}
}

/// `[N, ...] → [N, prod(...)]`.
pub struct Flatten;
impl Module for Flatten {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        x.flatten_from(1)
    }
    fn visit(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &Param)) {}
}

/// Inverted dropout; each training call draws a new mask from `seed` and a call counter.
pub struct Dropout {
    pub p: f64,
    pub seed: u64,
    calls: AtomicU64,
}
impl Dropout {
    pub fn new(p: f64, seed: u64) -> Dropout {
        Dropout {
            p,
            seed,
            calls: AtomicU64::new(0),
        }
    }
    /// Sets the call counter that the next forward's mask is drawn from, so that a training loop
    /// can make masks a function of its step (an exactly resumable run).
    pub fn set_calls(&self, calls: u64) {
        self.calls.store(calls, Ordering::Relaxed);
    }
}
impl Module for Dropout {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        x.dropout(
            self.p,
            self.seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(call),
            mode.training,
        )
    }
    fn visit(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &Param)) {}
}

/// Modules applied in order; children are named `0`, `1`, … like `nn.Sequential`.
#[derive(Default)]
pub struct Sequential {
    pub layers: Vec<Box<dyn Module>>,
}

impl Sequential {
    pub fn new() -> Sequential {
        Sequential { layers: Vec::new() }
    }
    pub fn push(mut self, m: impl Module + 'static) -> Sequential {
        self.layers.push(Box::new(m));
        self
    }
}

impl Module for Sequential {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let mut h = x.clone();
        for l in &self.layers {
            h = l.forward(&h, mode)?;
        }
        Ok(h)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        for (i, l) in self.layers.iter().enumerate() {
            l.visit(&join(prefix, &i.to_string()), f);
        }
    }
}
