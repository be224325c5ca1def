//! Batch normalisation over the channel dim of `[N, C, H, W]` or `[N, C]` inputs, with PyTorch's
//! semantics (`F.batch_norm`), plus the fused `relu(bn(x))` and `relu(bn(x) + residual)` variants.
//!
//! Invariants:
//! - All three public ops share one forward kernel (`BatchNormForward`) and one backward kernel
//!   (`BatchNormBackward`); the CUDA launchers implement the same structs with the same input and
//!   output lists (documented on each struct).
//! - Training mode normalises with the batch mean and the *biased* batch variance and writes the
//!   running statistics in place (`Tensor::assign`, never recorded):
//!   `running = (1 − momentum)·running + momentum·batch_stat`, with the *unbiased* variance for
//!   `running_var`. Eval mode normalises with the running statistics, which are then constants.
//! - γ, β and the running statistics may be f32 while `x` is f16 (mixed precision); the output has
//!   `x`'s dtype, the saved mean / inverse std are f32 (f64 when `x` is f64). f64 inputs need f64
//!   parameters.
//! - A missing γ/β acts as ones/zeros; missing running statistics are allowed only in training mode.
//! - Kernels are parallel over channels for the statistics/reductions and over `(n, c)` planes for the
//!   elementwise passes; channel `c`'s data is `N` blocks of `H·W` at offsets `(n·C + c)·H·W`.
//! - A channels-last input is normalised in place of its storage order, as `[N·H·W, C]` (kernel
//!   `n` = N·H·W, `hw` = 1); y, dx and the residual's gradient are then channels-last too, and a
//!   residual or `dy` in the other format is converted first.
//! - The kernels' inner loops live in `loops.rs` (compiled twice, baseline and AVX2); this file holds
//!   the ops, their argument checks, the kernel structs and the backward rule.

use super::apply_in;
use crate::backend::CpuKernel;
use crate::dtype::Float;
use crate::tensor::MemoryFormat;
use crate::{DType, Error, Result, Shape, Tensor};
use rayon::prelude::*;

mod loops;
use loops::f;

/// Arguments of the batch-norm ops (PyTorch's `F.batch_norm` parameters).
#[derive(Clone, Copy, Debug)]
pub struct BatchNormArgs<'a> {
    /// γ, shape `[C]`; `None` acts as ones.
    pub weight: Option<&'a Tensor>,
    /// β, shape `[C]`; `None` acts as zeros.
    pub bias: Option<&'a Tensor>,
    /// Running mean `[C]`: read in eval mode, updated in place in training mode.
    pub running_mean: Option<&'a Tensor>,
    /// Running (unbiased) variance `[C]`: read in eval mode, updated in place in training mode.
    pub running_var: Option<&'a Tensor>,
    pub training: bool,
    pub momentum: f64,
    pub eps: f64,
}

/// Forward kernel.
///
/// Inputs: `[x, gamma, beta, running_mean, running_var]`, plus `[residual]` when `add_residual`.
/// (In training mode without running statistics the op passes placeholders; they are only read to
/// produce outputs 3 and 4, which the op then ignores.)
///
/// Outputs: `[y, save_mean, save_invstd, new_running_mean, new_running_var]` where
/// `y = act(γ·(x − mean)·invstd + β [+ residual])`, act = ReLU when `relu`, and `(mean, invstd)` are
/// the batch statistics (training) or the running ones (eval). In eval mode the new running
/// statistics are copies of the old.
#[derive(Clone, Copy, Debug)]
pub struct BatchNormForward {
    pub n: usize,
    pub c: usize,
    /// `H·W` (1 for `[N, C]` inputs).
    pub hw: usize,
    pub training: bool,
    pub eps: f64,
    pub momentum: f64,
    pub relu: bool,
    pub add_residual: bool,
}

impl CpuKernel for BatchNormForward {
    const NAME: &'static str = "batch_norm";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let (n, c, hw) = (self.n, self.c, self.hw);
        let want = 5 + self.add_residual as usize;
        if inputs.len() != want {
            return Err(Error::bad(
                Self::NAME,
                format!("kernel expects {want} inputs, got {}", inputs.len()),
            ));
        }
        let (x, gamma, beta, rm, rv) = (inputs[0], inputs[1], inputs[2], inputs[3], inputs[4]);
        let res = if self.add_residual {
            Some(inputs[5])
        } else {
            None
        };
        let m = n * hw;
        // Pass 1 and 2 (training): per-channel mean, then biased variance, accumulated in f64.
        let stats: Vec<(f64, f64)> = if self.training {
            (0..c)
                .into_par_iter()
                .map(|ch| loops::channel_stats(x, n, c, hw, ch))
                .collect()
        } else {
            (0..c).map(|ch| (f(rm[ch]), f(rv[ch]))).collect()
        };
        let save_mean: Vec<T> = stats.iter().map(|&(mu, _)| T::c(mu)).collect();
        let save_invstd: Vec<T> = stats
            .iter()
            .map(|&(_, var)| T::c(1.0 / (var + self.eps).sqrt()))
            .collect();
        // y = x·scale + shift, scale = γ·invstd, shift = β − mean·scale.
        let coef: Vec<(T, T)> = (0..c)
            .map(|ch| {
                let scale = gamma[ch] * save_invstd[ch];
                (scale, beta[ch] - save_mean[ch] * scale)
            })
            .collect();
        // Pass 3: normalise, parallel over (n, c) planes.
        let mut y = vec![T::zero(); x.len()];
        let relu = self.relu;
        y.par_chunks_mut(hw.max(1))
            .enumerate()
            .with_min_len((4096 / hw.max(1)).max(1))
            .for_each(|(p, yp)| {
                let (scale, shift) = coef[p % c];
                let xp = &x[p * hw..(p + 1) * hw];
                let rp = res.map(|r| &r[p * hw..(p + 1) * hw]);
                loops::normalise_plane(yp, xp, rp, scale, shift, relu);
            });
        let (new_rm, new_rv): (Vec<T>, Vec<T>) = if self.training {
            let mo = self.momentum;
            let unbias = if m > 1 {
                m as f64 / (m - 1) as f64
            } else {
                f64::NAN
            };
            (0..c)
                .map(|ch| {
                    let (mu, var) = stats[ch];
                    (
                        T::c((1.0 - mo) * f(rm[ch]) + mo * mu),
                        T::c((1.0 - mo) * f(rv[ch]) + mo * var * unbias),
                    )
                })
                .unzip()
        } else {
            (rm.to_vec(), rv.to_vec())
        };
        Ok(vec![y, save_mean, save_invstd, new_rm, new_rv])
    }
}

/// Backward kernel.
///
/// Inputs: `[x, gamma, save_mean, save_invstd, y, dy]` (`y` is the forward output, read only for the
/// ReLU mask `y > 0`). Outputs: `[dx, dgamma, dbeta]`, plus `[dresidual]` when `add_residual`.
///
/// With `g = dy·[y > 0]` (or `dy` without ReLU) and `x̂ = (x − mean)·invstd`, per channel:
/// `dβ = Σg`, `dγ = Σg·x̂`; `dx = γ·invstd·(g − dβ/M − x̂·dγ/M)` in training mode (M = N·H·W), and
/// `dx = γ·invstd·g` in eval mode; `dresidual = g`. Two passes: a per-channel reduction, then an
/// elementwise pass over planes.
#[derive(Clone, Copy, Debug)]
pub struct BatchNormBackward {
    pub n: usize,
    pub c: usize,
    pub hw: usize,
    pub training: bool,
    pub relu: bool,
    pub add_residual: bool,
}

impl CpuKernel for BatchNormBackward {
    const NAME: &'static str = "batch_norm_backward";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let (n, c, hw) = (self.n, self.c, self.hw);
        if inputs.len() != 6 {
            return Err(Error::bad(
                Self::NAME,
                format!("kernel expects 6 inputs, got {}", inputs.len()),
            ));
        }
        let (x, gamma, mean, invstd, y, dy) = (
            inputs[0], inputs[1], inputs[2], inputs[3], inputs[4], inputs[5],
        );
        let relu = self.relu;
        // Pass 1: per-channel Σg and Σg·x̂ (f64 accumulation).
        let sums: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (sg, sgxm) = loops::grad_sums(x, y, dy, (n, c, hw, ch), f(mean[ch]), relu);
                (sg, sgxm * f(invstd[ch]))
            })
            .collect();
        let m = (n * hw) as f64;
        let dgamma: Vec<T> = sums.iter().map(|&(_, s)| T::c(s)).collect();
        let dbeta: Vec<T> = sums.iter().map(|&(s, _)| T::c(s)).collect();
        let mean_g: Vec<T> = sums.iter().map(|&(s, _)| T::c(s / m)).collect();
        let mean_gx: Vec<T> = sums.iter().map(|&(_, s)| T::c(s / m)).collect();
        // Pass 2: dx (and dresidual), parallel over planes.
        let mut dx = vec![T::zero(); x.len()];
        let mut dres = if self.add_residual {
            vec![T::zero(); x.len()]
        } else {
            Vec::new()
        };
        let training = self.training;
        let plane = |p: usize, dxp: &mut [T], drp: Option<&mut [T]>| {
            let ch = p % c;
            let o = p * hw;
            let coef = loops::InputGradCoef {
                k: gamma[ch] * invstd[ch],
                training: training.then(|| (mean[ch], invstd[ch], mean_g[ch], mean_gx[ch])),
            };
            let planes = (&x[o..o + hw], &y[o..o + hw], &dy[o..o + hw]);
            loops::input_grad_plane(dxp, drp, planes, coef, relu);
        };
        let (hw1, min_len) = (hw.max(1), (4096 / hw.max(1)).max(1));
        if self.add_residual {
            dx.par_chunks_mut(hw1)
                .zip(dres.par_chunks_mut(hw1))
                .enumerate()
                .with_min_len(min_len)
                .for_each(|(p, (dxp, drp))| plane(p, dxp, Some(drp)));
        } else {
            dx.par_chunks_mut(hw1)
                .enumerate()
                .with_min_len(min_len)
                .for_each(|(p, dxp)| plane(p, dxp, None));
        }
        let mut outs = vec![dx, dgamma, dbeta];
        if self.add_residual {
            outs.push(dres);
        }
        Ok(outs)
    }
}
impl Tensor {
    /// Batch normalisation of `[N, C, H, W]` or `[N, C]` input over all dims but C (PyTorch's
    /// `F.batch_norm`). In training mode the running statistics, when given, are updated in place.
    pub fn batch_norm(&self, a: &BatchNormArgs) -> Result<Tensor> {
        self.batch_norm_impl("batch_norm", None, a, false)
    }

    /// `relu(batch_norm(x))` as one op (one forward and one backward kernel).
    pub fn batch_norm_relu(&self, a: &BatchNormArgs) -> Result<Tensor> {
        self.batch_norm_impl("batch_norm_relu", None, a, true)
    }

    /// `relu(batch_norm(x) + residual)` as one op; `residual` has `x`'s shape.
    pub fn batch_norm_add_relu(&self, residual: &Tensor, a: &BatchNormArgs) -> Result<Tensor> {
        self.batch_norm_impl("batch_norm_add_relu", Some(residual), a, true)
    }

    fn batch_norm_impl(
        &self,
        op: &'static str,
        residual: Option<&Tensor>,
        a: &BatchNormArgs,
        relu: bool,
    ) -> Result<Tensor> {
        // Channels-last storage is N·H·W rows of C: the kernels see it as [N·H·W, C] (hw = 1).
        let format = self.format();
        let (n, c, hw) = match *self.dims() {
            [n, c] => (n, c, 1),
            [n, c, h, w] if format == MemoryFormat::ChannelsLast => (n * h * w, c, 1),
            [n, c, h, w] => (n, c, h * w),
            _ => {
                return Err(Error::bad(
                    op,
                    format!(
                        "expected a 4-d [N, C, H, W] or 2-d [N, C] input, got shape {:?}",
                        self.shape()
                    ),
                ))
            }
        };
        let x_f64 = self.dtype() == DType::F64;
        let stat_dtype = if x_f64 { DType::F64 } else { DType::F32 };
        let device = self.device();
        let check_param = |name: &str, t: Option<&Tensor>| -> Result<()> {
            let Some(t) = t else { return Ok(()) };
            if t.dims() != [c] {
                return Err(Error::bad(
                    op,
                    format!(
                        "{name} must have shape [{c}] (C of input {:?}), got {:?}",
                        self.shape(),
                        t.shape()
                    ),
                ));
            }
            if t.device() != device {
                return Err(Error::DeviceMismatch {
                    op,
                    a: device.to_string(),
                    b: t.device().to_string(),
                });
            }
            if (t.dtype() == DType::F64) != x_f64 {
                return Err(Error::DType {
                    op,
                    msg: format!(
                        "input is {} but {name} is {}; f64 inputs need f64 parameters and \
                         f16/f32 inputs need f16/f32 parameters",
                        self.dtype(),
                        t.dtype()
                    ),
                });
            }
            Ok(())
        };
        check_param("weight", a.weight)?;
        check_param("bias", a.bias)?;
        check_param("running_mean", a.running_mean)?;
        check_param("running_var", a.running_var)?;
        if a.running_mean.is_some() != a.running_var.is_some() {
            return Err(Error::bad(
                op,
                "give both running_mean and running_var, or neither",
            ));
        }
        if !a.training && a.running_mean.is_none() {
            return Err(Error::bad(
                op,
                "eval mode (training = false) needs running_mean and running_var",
            ));
        }
        if a.training && n * hw <= 1 {
            return Err(Error::bad(
                op,
                format!(
                    "expected more than 1 value per channel when training, got input shape {:?}",
                    self.shape()
                ),
            ));
        }
        if a.eps.is_nan() || a.eps < 0.0 || !a.momentum.is_finite() {
            return Err(Error::bad(
                op,
                format!(
                    "eps must be >= 0 and momentum finite, got eps {} and momentum {}",
                    a.eps, a.momentum
                ),
            ));
        }
        if let Some(r) = residual {
            if r.shape() != self.shape() {
                return Err(Error::shape(
                    op,
                    self.shape(),
                    r.shape(),
                    "residual must have the input's shape",
                ));
            }
            super::same_dtype_device(op, self, r)?;
        }
        let c_shape = Shape::new(vec![c]);
        let placeholder = |v: f64| Tensor::full(v, c_shape.clone(), stat_dtype, device);
        let gamma = match a.weight {
            Some(w) => w.detach(),
            None => placeholder(1.0)?,
        };
        let beta = match a.bias {
            Some(b) => b.detach(),
            None => placeholder(0.0)?,
        };
        let (rm, rv) = match (a.running_mean, a.running_var) {
            (Some(m), Some(v)) => (m.detach(), v.detach()),
            _ => (placeholder(0.0)?, placeholder(1.0)?),
        };
        let fwd = BatchNormForward {
            n,
            c,
            hw,
            training: a.training,
            eps: a.eps,
            momentum: a.momentum,
            relu,
            add_residual: residual.is_some(),
        };
        let mut ins: Vec<&Tensor> = vec![self, &gamma, &beta, &rm, &rv];
        if let Some(r) = residual {
            ins.push(r);
        }
        let outs = apply_in(
            format,
            &fwd,
            &ins,
            &[
                (self.shape().clone(), self.dtype()),
                (c_shape.clone(), stat_dtype),
                (c_shape.clone(), stat_dtype),
                (c_shape.clone(), rm.dtype()),
                (c_shape.clone(), rv.dtype()),
            ],
        )?;
        let [y, mean, invstd, new_rm, new_rv]: [Tensor; 5] = outs
            .try_into()
            .map_err(|_| Error::bad(op, "forward kernel returned the wrong number of outputs"))?;
        if a.training {
            if let (Some(m), Some(v)) = (a.running_mean, a.running_var) {
                m.assign(&new_rm)?;
                v.assign(&new_rv)?;
            }
        }

        // Backward: gradients for x, then weight, bias, residual when given.
        let mut tracked: Vec<&Tensor> = vec![self];
        let has_w = a.weight.is_some();
        let has_b = a.bias.is_some();
        if let Some(w) = a.weight {
            tracked.push(w);
        }
        if let Some(b) = a.bias {
            tracked.push(b);
        }
        if let Some(r) = residual {
            tracked.push(r);
        }
        let bwd = BatchNormBackward {
            n,
            c,
            hw,
            training: a.training,
            relu,
            add_residual: residual.is_some(),
        };
        let x = self.detach();
        // The rule reads y only for the ReLU mask. Without the ReLU, x stands in (unread), so a
        // plain batch norm's output (e.g. a downsample shortcut) is not kept alive for backward:
        // PyTorch's batch norm saves its input only.
        let y_saved = if relu { y.clone() } else { x.clone() };
        let res_dtype = residual.map(|r| r.dtype());
        Ok(y.track(op, &tracked, move |dy| {
            let mut specs = vec![
                (x.shape().clone(), x.dtype()),
                (c_shape.clone(), gamma.dtype()),
                (c_shape.clone(), beta.dtype()),
            ];
            if let Some(dt) = res_dtype {
                specs.push((x.shape().clone(), dt));
            }
            let mut g = apply_in(
                format,
                &bwd,
                &[&x, &gamma, &mean, &invstd, &y_saved, dy],
                &specs,
            )?
            .into_iter();
            let dx = g.next();
            let dgamma = g.next();
            let dbeta = g.next();
            let dres = g.next();
            let mut grads = vec![dx];
            if has_w {
                grads.push(dgamma);
            }
            if has_b {
                grads.push(dbeta);
            }
            if res_dtype.is_some() {
                grads.push(dres);
            }
            Ok(grads)
        }))
    }
}
