//! Mixup (Zhang et al. 2018; the Bag of Tricks recipe's §5): a batch of images and their soft
//! targets blended with a permutation of themselves, `x' = λ·x + (1 − λ)·x[perm]` and
//! `t' = λ·t + (1 − λ)·t[perm]`, in one kernel (on CUDA one launch over both).
//!
//! Invariants: image `i` is the `i`-th block of `per_image` stored elements in either memory format
//! (the batch dim is outermost in both), so the op is format-agnostic and keeps the images' format;
//! `perm` is checked to be a permutation of `0..n` before a kernel indexes with it; the blend is
//! `l·a + r·b` with `l = λ` and `r = 1 − l` rounded to the compute type (f32 for f16/f32, f64 for f64)
//! and no fused multiply-add, as the CPU loader computes it in f32. Not differentiable: mixup belongs
//! to the data pipeline (its inputs are data and targets, never parameters).

use super::{apply_in, chunk_len, same_dtype_device};
use crate::backend::CpuKernel;
use crate::dtype::Float;
use crate::{Error, Result, Tensor};
use rayon::prelude::*;

/// Inputs `[x, targets]` (`n · per_image` and `n · classes` elements); outputs the blended pair.
pub struct Mixup {
    pub n: usize,
    pub per_image: usize,
    pub classes: usize,
    pub lambda: f64,
    /// A permutation of `0..n`: row `i` is blended with row `perm[i]`.
    pub perm: Vec<usize>,
}

impl Mixup {
    /// Checks the permutation and λ (kernels index with `perm`).
    pub fn validate(&self) -> Result<()> {
        let mut seen = vec![false; self.n];
        let is_perm = self.perm.len() == self.n
            && self
                .perm
                .iter()
                .all(|&p| p < self.n && !std::mem::replace(&mut seen[p], true));
        if !is_perm {
            return Err(Error::bad(
                "mixup",
                format!(
                    "perm must be a permutation of 0..{}, got {:?}",
                    self.n, self.perm
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.lambda) {
            return Err(Error::bad(
                "mixup",
                format!("lambda must be in [0, 1], got {}", self.lambda),
            ));
        }
        Ok(())
    }
}

/// `out[i] = l·src[i] + r·src[perm[row]·len + col]` over rows of `len` elements.
fn blend_rows<T: Float>(src: &[T], len: usize, perm: &[usize], l: T, r: T) -> Vec<T> {
    let mut out = vec![T::zero(); src.len()];
    if len == 0 {
        return out;
    }
    let rows_per_task = chunk_len(perm.len(), (1 << 14) / len + 1);
    out.par_chunks_mut(rows_per_task * len)
        .enumerate()
        .for_each(|(task, chunk)| {
            for (k, row) in chunk.chunks_mut(len).enumerate() {
                let i = task * rows_per_task + k;
                let (a, b) = (&src[i * len..][..len], &src[perm[i] * len..][..len]);
                for ((o, &x), &y) in row.iter_mut().zip(a).zip(b) {
                    *o = l * x + r * y;
                }
            }
        });
    out
}

impl CpuKernel for Mixup {
    const NAME: &'static str = "mixup";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        self.validate()?;
        let (x, t) = match inputs {
            [x, t] if x.len() == self.n * self.per_image && t.len() == self.n * self.classes => {
                (*x, *t)
            }
            _ => {
                return Err(Error::bad(
                    Self::NAME,
                    format!(
                        "expected images of {}·{} and targets of {}·{} elements",
                        self.n, self.per_image, self.n, self.classes
                    ),
                ))
            }
        };
        let l = T::c(self.lambda);
        let r = T::one() - l;
        Ok(vec![
            blend_rows(x, self.per_image, &self.perm, l, r),
            blend_rows(t, self.classes, &self.perm, l, r),
        ])
    }
}

impl Tensor {
    /// Mixup of a batch: images `self` `[N, …]` and soft targets `[N, K]` blended with rows `perm`
    /// (a permutation of `0..N`) as `λ·v + (1 − λ)·v[perm]`. Returns `(images, targets)`, the
    /// images in their memory format. Both inputs share dtype and device; nothing is recorded for
    /// autograd.
    pub fn mixup(&self, targets: &Tensor, lambda: f64, perm: &[usize]) -> Result<(Tensor, Tensor)> {
        const OP: &str = "mixup";
        same_dtype_device(OP, self, targets)?;
        let n = self.dims().first().copied().unwrap_or(0);
        if self.rank() < 2 || targets.rank() != 2 || targets.dims()[0] != n {
            return Err(Error::shape(
                OP,
                self.shape(),
                targets.shape(),
                "images must be [N, …] and targets [N, K]",
            ));
        }
        let kernel = Mixup {
            n,
            per_image: self.numel() / n.max(1),
            classes: targets.dims()[1],
            lambda,
            perm: perm.to_vec(),
        };
        kernel.validate()?;
        let outs = apply_in(
            self.format(),
            &kernel,
            &[&self.detach(), &targets.detach()],
            &[
                (self.shape().clone(), self.dtype()),
                (targets.shape().clone(), targets.dtype()),
            ],
        )?;
        let [x, t]: [Tensor; 2] = outs
            .try_into()
            .map_err(|_| Error::bad(OP, "kernel returned the wrong number of outputs"))?;
        Ok((x, t))
    }
}
