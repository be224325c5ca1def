//! Softmax and log-softmax over any dimension, each one fused kernel forward and one backward.
//!
//! Invariants: both are numerically stable (the lane maximum is subtracted before `exp`, and
//! log-softmax is computed as `x − max − ln Σ exp(x − max)`, never as `ln(softmax)`), so they are
//! finite for any finite input. A tensor is viewed as `[outer, len, inner]` around the reduced dim;
//! kernels run in parallel over `outer` blocks. The backward rules use only the saved output `y`:
//! softmax `dx = y ⊙ (dy − Σ dy·y)`, log-softmax `dx = dy − exp(y) · Σ dy`.

use super::{apply1, chunk_len};
use crate::backend::CpuKernel;
use crate::dtype::Float;
use crate::{Result, Tensor};
use rayon::prelude::*;

/// `(outer, len, inner)` of `dims` around dim `d` (a 0-d tensor is one lane of length 1).
pub(crate) fn lanes(dims: &[usize], d: usize) -> (usize, usize, usize) {
    if dims.is_empty() {
        return (1, 1, 1);
    }
    let outer = dims[..d].iter().product();
    let inner = dims[d + 1..].iter().product();
    (outer, dims[d], inner)
}

/// Softmax of one `[len, inner]` block (lanes run along stride `inner`), written into `yb`.
#[inline]
pub(crate) fn softmax_block<T: Float>(xb: &[T], yb: &mut [T], len: usize, inner: usize, log: bool) {
    if inner == 1 {
        let m = xb.iter().copied().fold(T::neg_infinity(), T::max);
        let mut s = T::zero();
        for (y, &x) in yb.iter_mut().zip(xb) {
            let e = (x - m).exp();
            *y = e;
            s += e;
        }
        if log {
            let ls = s.ln();
            for (y, &x) in yb.iter_mut().zip(xb) {
                *y = x - m - ls;
            }
        } else {
            let r = T::one() / s;
            for y in yb.iter_mut() {
                *y *= r;
            }
        }
        return;
    }
    let mut m = vec![T::neg_infinity(); inner];
    for k in 0..len {
        for (mi, &x) in m.iter_mut().zip(&xb[k * inner..(k + 1) * inner]) {
            *mi = mi.max(x);
        }
    }
    let mut s = vec![T::zero(); inner];
    for k in 0..len {
        let r = k * inner..(k + 1) * inner;
        for (((y, &x), si), &mi) in yb[r.clone()].iter_mut().zip(&xb[r]).zip(&mut s).zip(&m) {
            let e = (x - mi).exp();
            *y = e;
            *si += e;
        }
    }
    if log {
        let ls: Vec<T> = s.iter().map(|v| v.ln()).collect();
        for k in 0..len {
            let r = k * inner..(k + 1) * inner;
            for (i, (y, &x)) in yb[r.clone()].iter_mut().zip(&xb[r]).enumerate() {
                *y = x - m[i] - ls[i];
            }
        }
    } else {
        let rs: Vec<T> = s.iter().map(|v| T::one() / *v).collect();
        for k in 0..len {
            for (y, &r) in yb[k * inner..(k + 1) * inner].iter_mut().zip(&rs) {
                *y *= r;
            }
        }
    }
}

/// y = softmax(x) (or log-softmax) along the middle axis of `[outer, len, inner]`.
pub struct Softmax {
    pub outer: usize,
    pub len: usize,
    pub inner: usize,
    pub log: bool,
}

impl CpuKernel for Softmax {
    const NAME: &'static str = "softmax";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let x = inputs[0];
        let mut y = vec![T::zero(); x.len()];
        let block = self.len * self.inner;
        if block == 0 {
            return Ok(vec![y]);
        }
        let (len, inner, log) = (self.len, self.inner, self.log);
        y.par_chunks_mut(block)
            .zip(x.par_chunks(block))
            .with_min_len(chunk_len(self.outer, (1 << 12) / block + 1))
            .for_each(|(yb, xb)| softmax_block(xb, yb, len, inner, log));
        Ok(vec![y])
    }
}

/// Backward of `Softmax`; inputs `[y, dy]` (y the forward output).
pub struct SoftmaxBackward {
    pub outer: usize,
    pub len: usize,
    pub inner: usize,
    pub log: bool,
}

impl CpuKernel for SoftmaxBackward {
    const NAME: &'static str = "softmax_backward";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let (y, dy) = (inputs[0], inputs[1]);
        let mut dx = vec![T::zero(); y.len()];
        let block = self.len * self.inner;
        if block == 0 {
            return Ok(vec![dx]);
        }
        let (len, inner, log) = (self.len, self.inner, self.log);
        dx.par_chunks_mut(block)
            .enumerate()
            .with_min_len(chunk_len(self.outer, (1 << 12) / block + 1))
            .for_each(|(o, db)| {
                let base = o * block;
                let (yb, gb) = (&y[base..base + block], &dy[base..base + block]);
                // s[i] = Σ_k dy·y (softmax) or Σ_k dy (log-softmax) for lane i.
                let mut s = vec![T::zero(); inner];
                for k in 0..len {
                    let r = k * inner..(k + 1) * inner;
                    for ((si, &g), &yv) in s.iter_mut().zip(&gb[r.clone()]).zip(&yb[r]) {
                        *si += if log { g } else { g * yv };
                    }
                }
                for k in 0..len {
                    let r = k * inner..(k + 1) * inner;
                    for (((d, &g), &yv), &si) in db[r.clone()]
                        .iter_mut()
                        .zip(&gb[r.clone()])
                        .zip(&yb[r])
                        .zip(&s)
                    {
                        *d = if log {
                            g - yv.exp() * si
                        } else {
                            yv * (g - si)
                        };
                    }
                }
            });
        Ok(vec![dx])
    }
}

impl Tensor {
    fn softmax_impl(&self, dim: isize, log: bool) -> Result<Tensor> {
        let name = if log { "log_softmax" } else { "softmax" };
        let d = self.shape().dim_index(name, dim)?;
        let (outer, len, inner) = lanes(self.dims(), d);
        let y = apply1(
            &Softmax {
                outer,
                len,
                inner,
                log,
            },
            &[self],
            self.shape().clone(),
            self.dtype(),
        )?;
        let y_saved = y.detach();
        Ok(y.track(name, &[self], move |dy| {
            let dx = apply1(
                &SoftmaxBackward {
                    outer,
                    len,
                    inner,
                    log,
                },
                &[&y_saved, dy],
                y_saved.shape().clone(),
                y_saved.dtype(),
            )?;
            Ok(vec![Some(dx)])
        }))
    }

    /// `exp(x) / Σ exp(x)` along `dim` (negative counts from the end), numerically stable.
    pub fn softmax(&self, dim: isize) -> Result<Tensor> {
        self.softmax_impl(dim, false)
    }

    /// `x − ln Σ exp(x)` along `dim` (negative counts from the end), numerically stable.
    pub fn log_softmax(&self, dim: isize) -> Result<Tensor> {
        self.softmax_impl(dim, true)
    }
}
