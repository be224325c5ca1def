//! Loss functions, each returning a scalar `[]` tensor: soft-target and hard-label (label-smoothed)
//! cross-entropy, knowledge-distillation KL, MSE, L1 and binary cross-entropy with logits, plus the
//! smoothed one-hot target builder.
//!
//! Invariants:
//! - Every loss is one fused forward kernel and one fused backward kernel; log-softmax inside them
//!   is the stable `x − max − ln Σ exp(x − max)`, and BCE uses `max(x,0) − x·t + ln(1 + e^{−|x|})`.
//! - Classification losses take `[N, K]` logits and average over the batch `N`; elementwise losses
//!   (MSE, L1, BCE) average over all elements. Per-row / per-chunk partial sums are collected in
//!   order and summed serially, so a loss is bit-for-bit reproducible on a given machine.
//! - Gradients flow to the prediction (`self`). Targets, labels and teacher logits are constants,
//!   except for `mse_loss` and `l1_loss`, whose target is differentiated too.
//! - Bad arguments (non-2-d logits, shape mismatch, label ≥ K, T ≤ 0, …) are errors, never panics.

use super::softmax::softmax_block;
use super::{apply, apply1, chunk_len, same_dtype_device};
use crate::backend::CpuKernel;
use crate::dtype::Float;
use crate::{DType, Device, Error, Result, Shape, Tensor};
use rayon::prelude::*;

/// Rows per rayon task for `[n, k]` row kernels.
fn rows_per_task(n: usize, k: usize) -> usize {
    chunk_len(n, (1 << 12) / k.max(1) + 1)
}

/// loss = (1/N) Σ_n −Σ_k t[n,k] · log_softmax(x)[n,k]; inputs `[logits, targets]`, both `[N, K]`.
pub struct CrossEntropySoft {
    pub n: usize,
    pub k: usize,
}

impl CpuKernel for CrossEntropySoft {
    const NAME: &'static str = "cross_entropy_soft";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let (x, t) = (inputs[0], inputs[1]);
        let k = self.k;
        let rows: Vec<T> = (0..self.n)
            .into_par_iter()
            .with_min_len(rows_per_task(self.n, k))
            .map_init(
                || vec![T::zero(); k],
                |ls, r| {
                    softmax_block(&x[r * k..(r + 1) * k], ls, k, 1, true);
                    let tr = &t[r * k..(r + 1) * k];
                    -ls.iter().zip(tr).map(|(&l, &ti)| l * ti).sum::<T>()
                },
            )
            .collect();
        let total: T = rows.into_iter().sum();
        Ok(vec![vec![total / T::c(self.n as f64)]])
    }
}

/// d logits = (softmax(x) · Σ_k t − t) / N · dy (= (softmax − t)/N · dy for probability targets);
/// inputs `[logits, targets, dy]`.
pub struct CrossEntropySoftBackward {
    pub n: usize,
    pub k: usize,
}

impl CpuKernel for CrossEntropySoftBackward {
    const NAME: &'static str = "cross_entropy_soft_backward";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let (x, t, dy) = (inputs[0], inputs[1], inputs[2][0]);
        let k = self.k;
        let s = dy / T::c(self.n as f64);
        let mut dx = vec![T::zero(); x.len()];
        if k == 0 {
            return Ok(vec![dx]);
        }
        dx.par_chunks_mut(k)
            .enumerate()
            .with_min_len(rows_per_task(self.n, k))
            .for_each(|(r, d)| {
                softmax_block(&x[r * k..(r + 1) * k], d, k, 1, false);
                let tr = &t[r * k..(r + 1) * k];
                let tsum: T = tr.iter().copied().sum();
                for (di, &ti) in d.iter_mut().zip(tr) {
                    *di = (*di * tsum - ti) * s;
                }
            });
        Ok(vec![dx])
    }
}

/// loss = T²/N Σ_n Σ_k p[n,k] (log p − log q), p = softmax(teacher/T), q = softmax(student/T);
/// inputs `[student, teacher]`, both `[N, K]`.
pub struct Distillation {
    pub n: usize,
    pub k: usize,
    pub temperature: f64,
}

impl CpuKernel for Distillation {
    const NAME: &'static str = "distillation_loss";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let (s, t) = (inputs[0], inputs[1]);
        let k = self.k;
        let inv_t = T::c(1.0 / self.temperature);
        let rows: Vec<T> = (0..self.n)
            .into_par_iter()
            .with_min_len(rows_per_task(self.n, k))
            .map_init(
                || (vec![T::zero(); k], vec![T::zero(); k], vec![T::zero(); k]),
                |(buf, lq, lp), r| {
                    for (b, &v) in buf.iter_mut().zip(&s[r * k..(r + 1) * k]) {
                        *b = v * inv_t;
                    }
                    softmax_block(buf, lq, k, 1, true);
                    for (b, &v) in buf.iter_mut().zip(&t[r * k..(r + 1) * k]) {
                        *b = v * inv_t;
                    }
                    softmax_block(buf, lp, k, 1, true);
                    lp.iter()
                        .zip(lq.iter())
                        .map(|(&a, &b)| {
                            let p = a.exp();
                            if p == T::zero() {
                                T::zero()
                            } else {
                                p * (a - b)
                            }
                        })
                        .sum::<T>()
                },
            )
            .collect();
        let total: T = rows.into_iter().sum();
        let tt = self.temperature * self.temperature;
        Ok(vec![vec![total * T::c(tt / self.n as f64)]])
    }
}

/// d student = T/N · (q − p) · dy; inputs `[student, teacher, dy]`.
pub struct DistillationBackward {
    pub n: usize,
    pub k: usize,
    pub temperature: f64,
}

impl CpuKernel for DistillationBackward {
    const NAME: &'static str = "distillation_loss_backward";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let (s, t, dy) = (inputs[0], inputs[1], inputs[2][0]);
        let k = self.k;
        let inv_t = T::c(1.0 / self.temperature);
        let scale = dy * T::c(self.temperature / self.n as f64);
        let mut dx = vec![T::zero(); s.len()];
        if k == 0 {
            return Ok(vec![dx]);
        }
        dx.par_chunks_mut(k)
            .enumerate()
            .with_min_len(rows_per_task(self.n, k))
            .for_each_init(
                || (vec![T::zero(); k], vec![T::zero(); k]),
                |(buf, p), (r, d)| {
                    for (b, &v) in buf.iter_mut().zip(&s[r * k..(r + 1) * k]) {
                        *b = v * inv_t;
                    }
                    softmax_block(buf, d, k, 1, false);
                    for (b, &v) in buf.iter_mut().zip(&t[r * k..(r + 1) * k]) {
                        *b = v * inv_t;
                    }
                    softmax_block(buf, p, k, 1, false);
                    for (di, &pi) in d.iter_mut().zip(p.iter()) {
                        *di = (*di - pi) * scale;
                    }
                },
            );
        Ok(vec![dx])
    }
}

/// The elementwise losses averaged over all elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairLossKind {
    /// (a − b)²
    Mse,
    /// |a − b|
    L1,
    /// max(x,0) − x·t + ln(1 + e^{−|x|}), a = logits x, b = targets t.
    BceWithLogits,
}

impl PairLossKind {
    fn name(self) -> &'static str {
        match self {
            PairLossKind::Mse => "mse_loss",
            PairLossKind::L1 => "l1_loss",
            PairLossKind::BceWithLogits => "bce_with_logits",
        }
    }
    #[inline(always)]
    fn value<T: Float>(self, a: T, b: T) -> T {
        match self {
            PairLossKind::Mse => (a - b) * (a - b),
            PairLossKind::L1 => (a - b).abs(),
            PairLossKind::BceWithLogits => a.max(T::zero()) - a * b + (-a.abs()).exp().ln_1p(),
        }
    }
    /// (∂/∂a, ∂/∂b) of `value`.
    #[inline(always)]
    fn derivs<T: Float>(self, a: T, b: T) -> (T, T) {
        match self {
            PairLossKind::Mse => {
                let g = T::c(2.0) * (a - b);
                (g, -g)
            }
            PairLossKind::L1 => {
                let d = a - b;
                let g = if d > T::zero() {
                    T::one()
                } else if d < T::zero() {
                    -T::one()
                } else {
                    T::zero()
                };
                (g, -g)
            }
            PairLossKind::BceWithLogits => {
                // sigmoid(a) computed without overflow for either sign.
                let e = (-a.abs()).exp();
                let sig = if a >= T::zero() {
                    T::one() / (T::one() + e)
                } else {
                    e / (T::one() + e)
                };
                (sig - b, -a)
            }
        }
    }
}

/// loss = mean over all elements of `kind(a, b)`; inputs `[a, b]` of equal length.
pub struct PairLoss {
    pub kind: PairLossKind,
}

impl CpuKernel for PairLoss {
    const NAME: &'static str = "pair_loss";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let (a, b) = (inputs[0], inputs[1]);
        let kind = self.kind;
        let n = a.len();
        if n == 0 {
            return Ok(vec![vec![T::nan()]]);
        }
        let c = chunk_len(n, 1 << 14);
        let parts: Vec<T> = a
            .par_chunks(c)
            .zip(b.par_chunks(c))
            .map(|(ac, bc)| ac.iter().zip(bc).map(|(&x, &y)| kind.value(x, y)).sum())
            .collect();
        let total: T = parts.into_iter().sum();
        Ok(vec![vec![total / T::c(n as f64)]])
    }
}

/// Outputs `[da, db]` = (∂kind/∂a, ∂kind/∂b) · dy / M; inputs `[a, b, dy]`.
pub struct PairLossBackward {
    pub kind: PairLossKind,
}

impl CpuKernel for PairLossBackward {
    const NAME: &'static str = "pair_loss_backward";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let (a, b, dy) = (inputs[0], inputs[1], inputs[2][0]);
        let kind = self.kind;
        let n = a.len();
        let s = dy / T::c(n.max(1) as f64);
        let mut da = vec![T::zero(); n];
        let mut db = vec![T::zero(); n];
        if n == 0 {
            return Ok(vec![da, db]);
        }
        let c = chunk_len(n, 1 << 14);
        da.par_chunks_mut(c)
            .zip(db.par_chunks_mut(c))
            .enumerate()
            .for_each(|(ci, (dac, dbc))| {
                let o = ci * c;
                for (i, (ga, gb)) in dac.iter_mut().zip(dbc.iter_mut()).enumerate() {
                    let (x, y) = kind.derivs(a[o + i], b[o + i]);
                    *ga = x * s;
                    *gb = y * s;
                }
            });
        Ok(vec![da, db])
    }
}

/// Checks `[N, K]` logits against a same-shaped second input; returns `(N, K)`.
fn check_rows(op: &'static str, logits: &Tensor, other: &Tensor) -> Result<(usize, usize)> {
    same_dtype_device(op, logits, other)?;
    let (n, k) = logits.shape().dims2(op)?;
    if other.shape() != logits.shape() {
        return Err(Error::shape(
            op,
            logits.shape(),
            other.shape(),
            "logits and targets must have the same [N, K] shape",
        ));
    }
    if n == 0 || k == 0 {
        return Err(Error::bad(
            op,
            format!("empty logits of shape {:?}", logits.shape()),
        ));
    }
    Ok((n, k))
}

impl Tensor {
    /// Soft-target cross-entropy: `mean_n(−Σ_k t[n,k] · log_softmax(logits)[n,k])`. `self` is
    /// `[N, K]` logits, `targets` `[N, K]` probabilities (not differentiated). One fused kernel
    /// forward; backward `(softmax − t)/N · dy`.
    pub fn cross_entropy_soft(&self, targets: &Tensor) -> Result<Tensor> {
        const OP: &str = "cross_entropy_soft";
        let (n, k) = check_rows(OP, self, targets)?;
        let y = apply1(
            &CrossEntropySoft { n, k },
            &[self, targets],
            Shape::scalar(),
            self.dtype(),
        )?;
        let (x, t) = (self.detach(), targets.detach());
        Ok(y.track(OP, &[self], move |dy| {
            let dx = apply1(
                &CrossEntropySoftBackward { n, k },
                &[&x, &t, dy],
                x.shape().clone(),
                x.dtype(),
            )?;
            Ok(vec![Some(dx)])
        }))
    }

    /// Hard-label cross-entropy with label smoothing `ε` (PyTorch
    /// `F.cross_entropy(logits, labels, label_smoothing=ε)`: target `(1−ε)·onehot + ε/K`).
    pub fn cross_entropy(&self, labels: &[usize], smoothing: f64) -> Result<Tensor> {
        const OP: &str = "cross_entropy";
        let (n, k) = self.shape().dims2(OP)?;
        if labels.len() != n {
            return Err(Error::bad(
                OP,
                format!("{} labels for a batch of {n} logits rows", labels.len()),
            ));
        }
        if let Some((r, &l)) = labels.iter().enumerate().find(|(_, &l)| l >= k) {
            return Err(Error::bad(
                OP,
                format!("label {l} at row {r} is out of range for {k} classes"),
            ));
        }
        let t = Tensor::one_hot_smoothed(labels, k, smoothing, self.dtype(), self.device())?;
        self.cross_entropy_soft(&t)
    }

    /// Knowledge distillation: `T² · KL(softmax(teacher/T) ‖ softmax(self/T))`, batch-mean (as
    /// `F.kl_div(log_softmax(s/T), softmax(t/T), reduction='batchmean') · T²`). Teacher logits are not
    /// differentiated.
    pub fn distillation_loss(&self, teacher_logits: &Tensor, temperature: f64) -> Result<Tensor> {
        const OP: &str = "distillation_loss";
        if !(temperature > 0.0 && temperature.is_finite()) {
            return Err(Error::bad(
                OP,
                format!("temperature must be finite and > 0, got {temperature}"),
            ));
        }
        let (n, k) = check_rows(OP, self, teacher_logits)?;
        let y = apply1(
            &Distillation { n, k, temperature },
            &[self, teacher_logits],
            Shape::scalar(),
            self.dtype(),
        )?;
        let (s, t) = (self.detach(), teacher_logits.detach());
        Ok(y.track(OP, &[self], move |dy| {
            let dx = apply1(
                &DistillationBackward { n, k, temperature },
                &[&s, &t, dy],
                s.shape().clone(),
                s.dtype(),
            )?;
            Ok(vec![Some(dx)])
        }))
    }

    fn pair_loss(&self, target: &Tensor, kind: PairLossKind, grad_target: bool) -> Result<Tensor> {
        let op = kind.name();
        same_dtype_device(op, self, target)?;
        if self.shape() != target.shape() {
            return Err(Error::shape(
                op,
                self.shape(),
                target.shape(),
                "prediction and target must have the same shape",
            ));
        }
        if self.numel() == 0 {
            return Err(Error::bad(op, "empty input"));
        }
        let y = apply1(
            &PairLoss { kind },
            &[self, target],
            Shape::scalar(),
            self.dtype(),
        )?;
        let (a, b) = (self.detach(), target.detach());
        let backward = move |dy: &Tensor| {
            let shape = a.shape().clone();
            let mut g = apply(
                &PairLossBackward { kind },
                &[&a, &b, dy],
                &[(shape.clone(), a.dtype()), (shape, a.dtype())],
            )?;
            let gb = g.pop();
            let ga = g.pop();
            Ok(if grad_target { vec![ga, gb] } else { vec![ga] })
        };
        Ok(if grad_target {
            y.track(op, &[self, target], backward)
        } else {
            y.track(op, &[self], backward)
        })
    }

    /// Mean over all elements of `(self − target)²`; gradients to both arguments.
    pub fn mse_loss(&self, target: &Tensor) -> Result<Tensor> {
        self.pair_loss(target, PairLossKind::Mse, true)
    }

    /// Mean over all elements of `|self − target|` (gradient 0 at ties); gradients to both.
    pub fn l1_loss(&self, target: &Tensor) -> Result<Tensor> {
        self.pair_loss(target, PairLossKind::L1, true)
    }

    /// Mean over all elements of binary cross-entropy with logits, computed stably as
    /// `max(x,0) − x·t + ln(1 + e^{−|x|})` (like `F.binary_cross_entropy_with_logits`). The target is
    /// not differentiated.
    pub fn bce_with_logits(&self, target: &Tensor) -> Result<Tensor> {
        self.pair_loss(target, PairLossKind::BceWithLogits, false)
    }

    /// `(1−ε)·one_hot(labels) + ε/K`, shape `[N, K]` with `N = labels.len()`, `K = classes`.
    pub fn one_hot_smoothed(
        labels: &[usize],
        classes: usize,
        smoothing: f64,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        const OP: &str = "one_hot_smoothed";
        if classes == 0 {
            return Err(Error::bad(OP, "need at least one class"));
        }
        if !(0.0..=1.0).contains(&smoothing) {
            return Err(Error::bad(
                OP,
                format!("label smoothing must be in [0, 1], got {smoothing}"),
            ));
        }
        let off = smoothing / classes as f64;
        let mut v = vec![off; labels.len() * classes];
        for (r, &l) in labels.iter().enumerate() {
            if l >= classes {
                return Err(Error::bad(
                    OP,
                    format!("label {l} at row {r} is out of range for {classes} classes"),
                ));
            }
            v[r * classes + l] += 1.0 - smoothing;
        }
        Tensor::from_f64s(&v, [labels.len(), classes], dtype, device)
    }
}
